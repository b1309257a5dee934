"""``python -m export data get``: a corpus from its official source, in the layout ser-edge uses.

One command per corpus, ``python -m export data get ravdess`` (or ``emodb``), which

1. downloads the archive from the publisher (RAVDESS's speech part from its Zenodo record,
   EmoDB from its site) with :mod:`urllib.request`, into ``DIR/.downloads/``, resuming a
   download that was cut off (an HTTP range request from where the ``.part`` file ends; a cut
   connection is resumed at once, up to :data:`RETRIES` times, and a killed run resumes when run
   again) and showing a progress bar (tqdm);
2. checks the archive: the SHA-256 given with ``--sha256``, else the checksum the publisher
   gives (Zenodo publishes an MD5; the EmoDB site none); a file that does not match is deleted;
3. converts every recording to FLAC (lossless, the original rate, channels and sample format)
   under its original name, in the layout the tests and training read
   (``ravdess/Actor_NN/*.flac``, ``emodb/wav/*.flac``; see :func:`export.paths.corpus_dir`);
4. checks the audio: the SHA-256 of the decoded samples of every file must be that of the copy
   this project's models were trained and tested on (:data:`SOURCES`' ``audio_sha256``, computed
   by :func:`audio_digest`), so a corpus got this way gives the figures the reports give;
5. prints the corpus's licence and how to cite it.

``DIR`` is ``--to``, by default the data folder (``$SER_EDGE_DATA``, else ``../shared/data``
beside the project). A corpus already there is left alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import os
import re
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ser_edge.errors import SerEdgeError

from .paths import DATA_ENV, data_root

__all__ = ["Source", "SOURCES", "DataError", "get", "download", "convert", "audio_digest",
           "missing_corpus"]

#: How many times a download cut off mid-way is resumed at once before giving up.
RETRIES = 3

#: Seconds without data after which a connection counts as cut.
TIMEOUT_S = 60.0

_CHUNK = 1 << 16


class DataError(SerEdgeError):
    """A corpus could not be downloaded, checked or converted."""


@dataclass(frozen=True)
class Source:
    """Where a corpus comes from, and how its archive becomes ser-edge's layout.

    Parameters
    ----------
    name : str
        The corpus's name (its folder under the data folder).
    title : str
        Its full name.
    url : str
        The archive at the publisher.
    archive : str
        The archive's file name.
    checksum : str or None
        What the publisher gives for the archive, ``"md5:HEX"`` or ``"sha256:HEX"``; None when
        it gives none.
    pattern : str
        A regular expression the base name of every recording in the archive matches (other
        members are ignored).
    place : callable
        ``place(match) -> str``: a recording's path in the corpus folder, posix-style, from its
        name's match.
    n_files : int
        How many recordings the archive holds.
    audio_sha256 : str
        :func:`audio_digest` of the converted corpus: the samples of every file.
    licence : str
        The licence, as the publisher states it.
    citation : str
        How to cite the corpus.
    extra : tuple of str
        Other members (by base name) copied into the corpus folder as they are.
    """

    name: str
    title: str
    url: str
    archive: str
    checksum: str | None
    pattern: str
    place: Callable[[re.Match[str]], str]
    n_files: int
    audio_sha256: str
    licence: str
    citation: str
    extra: tuple[str, ...] = ()


#: The corpora that ``python -m export data get`` downloads, by name.
SOURCES: dict[str, Source] = {
    "ravdess": Source(
        name="ravdess",
        title="RAVDESS, the Ryerson Audio-Visual Database of Emotional Speech and Song (speech, "
              "audio only: 1440 clips, 24 actors)",
        url="https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1",
        archive="Audio_Speech_Actors_01-24.zip",
        checksum="md5:bc696df654c87fed845eb13823edef8a",  # as Zenodo's record gives it
        pattern=r"^03-01-\d\d-\d\d-\d\d-\d\d-(\d\d)\.wav$",
        place=lambda m: f"Actor_{m.group(1)}/{m.group(0)[:-4]}.flac",
        n_files=1440,
        audio_sha256="d28588315048093c054fef6e200601d2d428c857d923b66822a58e126edc642f",
        licence="Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International (CC "
                "BY-NC-SA 4.0): non-commercial use, with attribution, derivatives under the "
                "same terms. The bundled models are trained on it, so the same terms apply to "
                "them.",
        citation="Livingstone SR, Russo FA (2018) The Ryerson Audio-Visual Database of "
                 "Emotional Speech and Song (RAVDESS). PLoS ONE 13(5): e0196391. "
                 "https://doi.org/10.1371/journal.pone.0196391",
    ),
    "emodb": Source(
        name="emodb",
        title="EmoDB, the Berlin Database of Emotional Speech (535 clips, 10 speakers)",
        url="http://emodb.bilderbar.info/download/download.zip",
        archive="download.zip",
        checksum=None,  # the site gives none
        pattern=r"^\d\d[ab]\d\d[A-Z][a-z]\.wav$",
        place=lambda m: f"wav/{m.group(0)[:-4]}.flac",
        n_files=535,
        audio_sha256="a0a92b1d4c58efe0a405001d1bbfc032b82c1673eb86727ea3b42d6e567eed37",
        licence="CC0 1.0 Universal, as audEERING's packaging of EmoDB declares it (the site "
                "offers the database freely, with no licence text).",
        citation="Burkhardt F, Paeschke A, Rolfes M, Sendlmeier W, Weiss B (2005) A database "
                 "of German emotional speech. Proc. Interspeech 2005, 1517-1520.",
        extra=("erkennung.txt", "erklaerung.txt"),
    ),
}


def missing_corpus(name: str) -> str:
    """Why a corpus is not there and how to get it: the message of every test that skips."""
    where = data_root()
    if name in SOURCES:
        return (f"corpus {name!r} not found under {where}: `python -m export data get {name}` "
                f"downloads it there (or set {DATA_ENV} to a folder that has it)")
    return (f"corpus {name!r} not found under {where} (set {DATA_ENV} to a folder that has it; "
            "export/corpora.py gives each corpus's layout)")


# -- the download ------------------------------------------------------------------------------


def _digests(path: Path | None = None) -> dict[str, Any]:
    """SHA-256 and MD5 (hashlib objects) of what ``path`` holds so far, if anything."""
    hashes = {"sha256": hashlib.sha256(), "md5": hashlib.md5(usedforsecurity=False)}
    if path is not None and path.exists():
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                for h in hashes.values():
                    h.update(block)
    return hashes


def download(url: str, path: str | os.PathLike[str], *, progress: bool = True,
             retries: int = RETRIES, log: Callable[[str], None] = print) -> dict[str, str]:
    """Download ``url`` to ``path``, resuming from ``path + ".part"`` if it is there.

    The bytes go to ``PATH.part``, renamed to ``PATH`` once complete. A part left by an earlier
    run, or by a connection cut during this one, is continued with an HTTP range request
    (``Range: bytes=N-``); a server that ignores the range (status 200) is read from the start
    again.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://``.
    path : path-like
        Where the file goes.
    progress : bool
        Show a progress bar on stderr (tqdm; only on a terminal).
    retries : int >= 0
        How many times a connection cut mid-way is resumed at once.
    log : callable
        Where a line about each resumption goes.

    Returns
    -------
    digests : dict
        ``{"sha256": HEX, "md5": HEX}`` of the whole file.

    Raises
    ------
    DataError
        If the server cannot be reached, answers with an error, or the connection is cut more
        than ``retries`` times (the part is kept: the same command resumes it).
    """
    from tqdm import tqdm

    path = Path(path)
    part = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    hashes = _digests(part)
    attempt = 0
    with tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=path.name,
              disable=None if progress else True) as bar:
        while True:
            done = part.stat().st_size if part.exists() else 0
            request = urllib.request.Request(url, headers={"User-Agent": "ser-edge"})
            if done:
                request.add_header("Range", f"bytes={done}-")
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                    if done and response.status != 206:  # the range was ignored: start again
                        done, hashes = 0, _digests()
                    length = response.headers.get("Content-Length")
                    bar.reset(total=done + int(length) if length is not None else None)
                    bar.update(done)
                    with open(part, "ab" if done else "wb") as f:
                        while block := response.read(_CHUNK):
                            f.write(block)
                            for h in hashes.values():
                                h.update(block)
                            bar.update(len(block))
                    if length is not None and part.stat().st_size < done + int(length):
                        raise ConnectionError("the connection closed early")
                break
            except urllib.error.HTTPError as exc:
                if exc.code == 416 and done:  # nothing left to send: the part is whole
                    break
                raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", exc)
                got = part.stat().st_size if part.exists() else 0
                if attempt >= retries or not got > done:
                    raise DataError(
                        f"{url}: {reason} ({got} bytes in {part}; run the same command again to "
                        "resume)") from None
                attempt += 1
                log(f"the download stopped at {got} bytes ({reason}); resuming "
                    f"({attempt} of {retries})")
    part.replace(path)
    return {name: h.hexdigest() for name, h in hashes.items()}


def _check_archive(path: Path, digests: dict[str, str], expected: str | None) -> str:
    """Compare ``digests`` with ``"md5:HEX"`` or ``"sha256:HEX"``; delete ``path`` if unlike.

    Returns what was checked, in words.
    """
    if expected is None:
        return f"SHA-256 {digests['sha256']} (the publisher gives no checksum)"
    kind, _, value = expected.partition(":")
    if kind not in digests or not value:
        raise DataError(f"{expected!r}: a checksum is 'sha256:HEX' or 'md5:HEX'")
    said = {"sha256": "SHA-256", "md5": "MD5"}[kind]
    if digests[kind] != value.lower():
        path.unlink()
        raise DataError(f"{path.name}: {said} {digests[kind]}, expected {value} (a damaged or "
                        "different file: it was deleted; run the command again to download it "
                        "anew)")
    return f"{said} as expected" + ("" if kind == "sha256" else f"; SHA-256 {digests['sha256']}")


# -- the conversion ----------------------------------------------------------------------------


def convert(archive: str | os.PathLike[str], source: Source, folder: str | os.PathLike[str], *,
            progress: bool = True) -> list[str]:
    """Write every recording of ``archive`` into ``folder`` as FLAC, in ``source``'s layout.

    Each WAV member whose base name matches ``source.pattern`` is decoded and written as FLAC
    with its own sample rate, channels and sample format (lossless: the samples are those of
    the WAV file), at ``source.place(match)``; the members named in ``source.extra`` are copied
    as they are.

    Returns
    -------
    files : list of str
        The recordings written, as posix paths relative to ``folder``, sorted.

    Raises
    ------
    DataError
        If the archive cannot be read, or does not hold ``source.n_files`` recordings.
    """
    import soundfile as sf
    from tqdm import tqdm

    folder = Path(folder)
    written = []
    try:
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.infolist() if not m.is_dir()]
            audio = [(m, re.match(source.pattern, PurePosixPath(m.filename).name))
                     for m in members]
            audio = [(m, match) for m, match in audio if match]
            if len(audio) != source.n_files:
                raise DataError(f"{Path(archive).name}: {len(audio)} recordings, expected "
                                f"{source.n_files} (not the {source.name} archive?)")
            for m in members:
                if PurePosixPath(m.filename).name in source.extra:
                    (folder / PurePosixPath(m.filename).name).write_bytes(z.read(m))
            for m, match in tqdm(audio, desc=f"{source.name} to FLAC", unit=" files",
                                 disable=None if progress else True):
                rel = source.place(match)
                out = folder / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with sf.SoundFile(io.BytesIO(z.read(m))) as wav:
                    subtype = wav.subtype if wav.subtype in _FLAC_SUBTYPES else "PCM_16"
                    y = wav.read(dtype="int32" if subtype == "PCM_24" else "int16",
                                 always_2d=True)
                    sf.write(out, y, wav.samplerate, format="FLAC", subtype=subtype)
                written.append(rel)
    except (zipfile.BadZipFile, OSError, RuntimeError) as exc:  # soundfile's LibsndfileError
        raise DataError(f"{Path(archive).name}: cannot convert ({exc})") from None
    return sorted(written)


_FLAC_SUBTYPES = ("PCM_S8", "PCM_16", "PCM_24")


def audio_digest(folder: str | os.PathLike[str], files: Iterable[str]) -> str:
    """SHA-256 of the decoded samples of ``files`` (posix paths under ``folder``).

    For each file in sorted order: its relative path, sample rate, channels and frames as a line
    of text, then its samples as little-endian 16-bit integers, interleaved. It depends on the
    audio alone, not on the FLAC encoder that wrote the file.

    Returns
    -------
    hex : str
    """
    import soundfile as sf

    h = hashlib.sha256()
    for rel in sorted(files):
        y, sr = sf.read(Path(folder) / rel, dtype="int16", always_2d=True)
        h.update(f"{rel}\t{sr}\t{y.shape[1]}\t{y.shape[0]}\n".encode())
        h.update(np.ascontiguousarray(y, dtype="<i2").tobytes())
    return h.hexdigest()


# -- the command -------------------------------------------------------------------------------


def get(name: str, to: str | os.PathLike[str] | None = None, *, url: str | None = None,
        sha256: str | None = None, source: Source | None = None, progress: bool = True,
        log: Callable[[str], None] = print) -> Path:
    """Download, check and convert a corpus into ``to/NAME``; print its licence.

    Parameters
    ----------
    name : str
        A key of :data:`SOURCES` (``"ravdess"``, ``"emodb"``).
    to : path-like, optional
        The data folder; default :func:`export.paths.data_root`.
    url : str, optional
        Another place for the same archive (a mirror).
    sha256 : str, optional
        The archive's SHA-256, checked instead of the publisher's checksum.
    source : Source, optional
        Instead of ``SOURCES[name]`` (the tests' archive).
    progress : bool
        Progress bars on stderr (on a terminal).
    log : callable
        Where the lines of the report go.

    Returns
    -------
    folder : Path
        ``to/NAME``.

    Raises
    ------
    DataError
        If ``name`` is unknown, the download fails, a checksum does not match (the archive is
        deleted), or the converted audio is not the expected audio (it is left in
        ``to/.NAME.partial`` and the corpus folder is not written).
    """
    if source is None:
        if name not in SOURCES:
            raise DataError(f"no source for corpus {name!r}; ser-edge downloads "
                            f"{', '.join(SOURCES)}")
        source = SOURCES[name]
    root = data_root() if to is None else Path(to).expanduser()
    folder = root / source.name
    if folder.exists():
        log(f"{folder} is there already: nothing to do (delete it to get it again)")
        return folder
    log(f"{source.title}\nfrom {url or source.url}")
    archive = root / ".downloads" / source.archive
    if archive.exists():  # downloaded whole by an earlier run that stopped after
        digests = {k: h.hexdigest() for k, h in _digests(archive).items()}
    else:
        digests = download(url or source.url, archive, progress=progress, log=log)
    checked = _check_archive(archive, digests, f"sha256:{sha256}" if sha256 else source.checksum)
    log(f"{archive}: {archive.stat().st_size} bytes, {checked}")
    staging = root / f".{source.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    files = convert(archive, source, staging, progress=progress)
    digest = audio_digest(staging, files)
    if digest != source.audio_sha256:
        raise DataError(f"the audio of {source.archive} is not the audio ser-edge's models were "
                        f"trained and tested on (SHA-256 of the samples {digest}, expected "
                        f"{source.audio_sha256}); the converted files are in {staging}")
    staging.replace(folder)
    archive.unlink()
    with contextlib.suppress(OSError):  # the downloads folder, if nothing else is in it
        archive.parent.rmdir()
    log(f"{folder}: {len(files)} files, FLAC, original names; the samples' SHA-256 as expected")
    log(f"Licence: {source.licence}\nCite: {source.citation}")
    return folder

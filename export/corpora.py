"""Corpus parsers: a folder of clips to a table of (path, emotion, speaker, corpus, other labels).

Every parser reads labels from the corpus's file-naming convention only (no audio is opened), maps
the emotion onto one shared vocabulary (RAVDESS's names, :data:`EMOTIONS`, plus ``"boredom"`` for
EmoDB's *Langeweile*, which RAVDESS lacks) so corpora can be combined, and reports every audio file
that does not fit the convention in :attr:`Corpus.rejected` (and with a warning) instead of
dropping it silently.

Supported layouts
-----------------
``ravdess``
    ``Actor_NN/MM-VV-EE-II-SS-RR-AA.ext`` (Livingstone & Russo 2018): modality, vocal channel
    (01 speech, 02 song), emotion, intensity, statement, repetition, actor (odd = male).
``emodb``
    ``SSTTTEV.ext`` (Burkhardt et al. 2005): speaker, text code, emotion letter (German initial:
    W anger, L boredom, E disgust, A fear, F happiness, T sadness, N neutral), version.
``tess``
    ``OAF_word_emotion.ext`` / ``YAF_word_emotion.ext`` (Toronto Emotional Speech Set), emotion
    one of angry, disgust, fear, happy, neutral, ps (pleasant surprise), sad.
``ased``
    ``<NN><Emotion>/<x><n>-<yy>-<aa>-<gg>-<bb>.ext`` (ASED v1, Amharic): emotion letter (n
    neutral, f fearful, h happy, s sad, a angry), folder number, sentence, repetition, gender
    (01 female, 02 male), speaker (01-65).
``nemo``
    ``samples/<speaker>_<emotion>_<n>.ext`` (nEMO, Polish; Christop 2024): emotion one of anger,
    fear, happiness, sadness, surprised, neutral; ``data.tsv`` beside ``samples/`` gives gender.
``korean``
    ``{emotional-to-emotional,plain-to-emotional}/<spk>/wav/<spk>NNNNN.ext`` (the public sample of
    the KAIST/SELVAS emotional speech corpus): 1-100 neutral, 101-200 happy, 201-300 sad,
    301-400 angry (as its scripts say; its README swaps the last two).
``turev``
    ``<Emotion>/<speaker>_<code>_<word>.ext`` (TurEV-DB, Turkish single words): Angry, Calm,
    Happy, Sad.
``baved``
    ``<word>/<speaker>-<gender>-<age>-<word>-<level>-<id>.ext`` (BAVED, Arabic single words):
    **arousal** levels 0 low, 1 neutral, 2 high, not emotions: the clips' ``emotion`` is ``""``
    and ``labels["arousal"]`` holds ``"low"``, ``"neutral"`` or ``"high"``.
``folder``
    ``<label>/<anything>.ext``: one folder per label, no speaker information.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser_edge.errors import ParameterError

__all__ = [
    "EMOTIONS",
    "SUBSETS",
    "AUDIO_EXTENSIONS",
    "Clip",
    "Corpus",
    "parse_ravdess",
    "parse_emodb",
    "parse_tess",
    "parse_ased",
    "parse_nemo",
    "parse_korean",
    "parse_turev",
    "parse_baved",
    "parse_folder_per_label",
    "parse_corpus",
    "PARSERS",
    "normalise_emotion",
    "select",
    "combine",
    "write_feature_csv",
    "read_feature_csv",
    "AROUSAL",
    "EMOTION_AROUSAL",
]

#: The shared emotion vocabulary: RAVDESS's eight names, in RAVDESS's code order.
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")

#: Named emotion subsets for :func:`select`.
SUBSETS: dict[str, tuple[str, ...]] = {
    "all": EMOTIONS,
    "4class": ("neutral", "happy", "sad", "angry"),
    "6class": ("neutral", "happy", "sad", "angry", "fearful", "disgust"),
}

#: File extensions treated as audio (case-insensitive); other files are ignored, not reported.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aif", ".aiff")

#: Arousal levels (BAVED's 0, 1, 2), low to high.
AROUSAL = ("low", "neutral", "high")

#: The arousal of each emotion of the vocabulary, as commonly placed on Russell's circumplex
#: (calm, sad and bored low; neutral in the middle; the rest high).
EMOTION_AROUSAL = {"neutral": "neutral", "calm": "low", "happy": "high", "sad": "low",
                   "angry": "high", "fearful": "high", "disgust": "neutral",
                   "surprised": "high", "boredom": "low"}

_RAVDESS_EMOTIONS = {f"{i + 1:02d}": name for i, name in enumerate(EMOTIONS)}
_RAVDESS_SONG_EMOTIONS = {"01", "02", "03", "04", "05", "06"}
_RAVDESS_RE = re.compile(
    r"^(?P<modality>0[123])-(?P<vocal_channel>0[12])-(?P<code>0[1-8])-(?P<intensity>0[12])-"
    r"(?P<statement>0[12])-(?P<repetition>0[12])-(?P<actor>\d\d)$"
)

_EMODB_EMOTIONS = {
    "W": "angry",
    "L": "boredom",
    "E": "disgust",
    "A": "fearful",
    "F": "happy",
    "T": "sad",
    "N": "neutral",
}
_EMODB_MALE = {"03", "10", "11", "12", "15"}
_EMODB_RE = re.compile(
    r"^(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<letter>[WLEAFTN])(?P<version>[a-z])$"
)

_TESS_RE = re.compile(r"^(?P<speaker>OAF|YAF)_(?P<word>[A-Za-z]+)_(?P<emotion>[A-Za-z]+)$")

#: Spellings of emotions in other corpora and folder names, mapped to the shared vocabulary.
_ALIASES = {
    "neutral": "neutral",
    "calm": "calm",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "angry": "angry",
    "anger": "angry",
    "fear": "fearful",
    "fearful": "fearful",
    "disgust": "disgust",
    "disgusted": "disgust",
    "surprise": "surprised",
    "surprised": "surprised",
    "ps": "surprised",
    "pleasant_surprise": "surprised",
    "pleasant_surprised": "surprised",
    "boredom": "boredom",
    "bored": "boredom",
}


def normalise_emotion(name: str) -> str | None:
    """Map an emotion spelling (``"Fear"``, ``"ps"``, ``"pleasant surprise"``) to the vocabulary.

    Returns
    -------
    emotion : str or None
        A name of :data:`EMOTIONS` (or ``"boredom"``), or None if the spelling is unknown.
    """
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return _ALIASES.get(key)


@dataclass(frozen=True)
class Clip:
    """One clip of a corpus.

    Attributes
    ----------
    path : Path
        The audio file.
    emotion : str
        Emotion in the shared vocabulary (:data:`EMOTIONS`, ``"boredom"``, or for the
        folder-per-label layout the folder's own name when it is not a known emotion).
    speaker : str
        Speaker id, prefixed with the corpus (``"ravdess:01"``) so that corpora combine without
        clashes; ``""`` when the layout carries none.
    corpus : str
        ``"ravdess"``, ``"emodb"``, ``"tess"`` or the name given to the folder parser.
    labels : dict of str to str
        The corpus's other labels (``intensity``, ``statement``, ``sex``, ``text``, ``word``, ...),
        as strings, plus ``raw_emotion``, the emotion as the corpus spells it.
    """

    path: Path
    emotion: str
    speaker: str
    corpus: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Corpus:
    """The result of a parser: the clips that fit the convention and the files that do not.

    Attributes
    ----------
    name : str
    root : Path
    clips : list of Clip
        Sorted by path.
    rejected : list of (Path, str)
        Audio files that do not fit the naming convention, with the reason.
    """

    name: str
    root: Path
    clips: list[Clip]
    rejected: list[tuple[Path, str]]

    def __len__(self) -> int:
        return len(self.clips)

    def counts(self, key: str = "emotion") -> dict[str, int]:
        """Count clips per ``emotion``, ``speaker`` or any key of :attr:`Clip.labels`."""
        out: dict[str, int] = {}
        for clip in self.clips:
            value = (
                getattr(clip, key)
                if key in ("emotion", "speaker", "corpus")
                else clip.labels.get(key, "")
            )
            out[value] = out.get(value, 0) + 1
        return dict(sorted(out.items()))


def _audio_files(root: Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise ParameterError(f"{root}: corpus folder not found")
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
    )


def _finish(
    name: str, root: Path, clips: list[Clip], rejected: list[tuple[Path, str]], warn: bool
) -> Corpus:
    if rejected and warn:
        first, reason = rejected[0]
        warnings.warn(
            f"{name}: {len(rejected)} file(s) under {root} do not fit the naming convention and "
            f"were left out (first: {first.name}: {reason})",
            stacklevel=3,
        )
    return Corpus(name=name, root=Path(root), clips=clips, rejected=rejected)


def parse_ravdess(root: str | Path, *, warn: bool = True) -> Corpus:
    """Parse a RAVDESS folder (speech and song, any modality).

    Parameters
    ----------
    root : str or Path
        Folder holding ``Actor_01`` .. ``Actor_24`` (or the clips directly).
    warn : bool
        Warn (``UserWarning``) when files are rejected.

    Returns
    -------
    corpus : Corpus
        ``labels``: ``modality`` (full-AV/video-only/audio-only), ``vocal_channel``
        (speech/song), ``intensity`` (normal/strong), ``statement`` (01 "Kids are talking by the
        door", 02 "Dogs are sitting by the door"), ``repetition``, ``actor``, ``sex``,
        ``raw_emotion`` (the two-digit code).

    Raises
    ------
    ParameterError
        If ``root`` is not a folder.

    Notes
    -----
    Rejected: names that do not match ``MM-VV-EE-II-SS-RR-AA``, neutral with strong intensity,
    song clips with disgust or surprised (RAVDESS song has neither), and a clip whose actor
    differs from its ``Actor_NN`` folder.
    """
    modalities = {"01": "full-AV", "02": "video-only", "03": "audio-only"}
    clips, rejected = [], []
    for path in _audio_files(Path(root)):
        m = _RAVDESS_RE.match(path.stem)
        if m is None:
            rejected.append((path, "name is not MM-VV-EE-II-SS-RR-AA with valid codes"))
            continue
        g = m.groupdict()
        actor = g["actor"]
        if not 1 <= int(actor) <= 24:
            rejected.append((path, f"actor {actor} is outside 01..24"))
            continue
        parent = re.fullmatch(r"Actor_(\d\d)", path.parent.name)
        if parent is not None and parent.group(1) != actor:
            rejected.append((path, f"actor {actor} does not match its folder {path.parent.name}"))
            continue
        if g["code"] == "01" and g["intensity"] == "02":
            rejected.append((path, "neutral has no strong intensity in RAVDESS"))
            continue
        channel = "speech" if g["vocal_channel"] == "01" else "song"
        if channel == "song" and g["code"] not in _RAVDESS_SONG_EMOTIONS:
            rejected.append((path, f"emotion code {g['code']} does not occur in RAVDESS song"))
            continue
        labels = {
            "modality": modalities[g["modality"]],
            "vocal_channel": channel,
            "intensity": "normal" if g["intensity"] == "01" else "strong",
            "statement": g["statement"],
            "repetition": g["repetition"],
            "actor": actor,
            "sex": "male" if int(actor) % 2 else "female",
            "raw_emotion": g["code"],
        }
        clips.append(
            Clip(path, _RAVDESS_EMOTIONS[g["code"]], f"ravdess:{actor}", "ravdess", labels)
        )
    return _finish("ravdess", Path(root), clips, rejected, warn)


def parse_emodb(root: str | Path, *, warn: bool = True) -> Corpus:
    """Parse an EmoDB folder (``SSTTTEV.wav``).

    Emotion letters map to W angry, L boredom (not in RAVDESS: kept as ``"boredom"`` so that
    :func:`select` can drop it), E disgust, A fearful, F happy, T sad, N neutral.

    Returns
    -------
    corpus : Corpus
        ``labels``: ``text`` (a01 .. b10), ``version``, ``sex``, ``raw_emotion`` (the letter).

    Raises
    ------
    ParameterError
        If ``root`` is not a folder.
    """
    clips, rejected = [], []
    for path in _audio_files(Path(root)):
        m = _EMODB_RE.match(path.stem)
        if m is None:
            rejected.append((path, "name is not SSTTTEV (speaker, text, emotion letter, version)"))
            continue
        g = m.groupdict()
        labels = {
            "text": g["text"],
            "version": g["version"],
            "sex": "male" if g["speaker"] in _EMODB_MALE else "female",
            "raw_emotion": g["letter"],
        }
        clips.append(
            Clip(path, _EMODB_EMOTIONS[g["letter"]], f"emodb:{g['speaker']}", "emodb", labels)
        )
    return _finish("emodb", Path(root), clips, rejected, warn)


def parse_tess(root: str | Path, *, warn: bool = True) -> Corpus:
    """Parse a TESS folder (``OAF_word_emotion.wav``, ``YAF_word_emotion.wav``).

    ``ps`` (pleasant surprise) maps to ``"surprised"``, ``fear`` to ``"fearful"``. TESS has two
    speakers (OAF, older; YAF, younger; both female), so it adds little to speaker-independent
    evaluation.

    Returns
    -------
    corpus : Corpus
        ``labels``: ``word``, ``sex`` (female), ``age_group`` (older/younger), ``raw_emotion``.

    Raises
    ------
    ParameterError
        If ``root`` is not a folder.
    """
    clips, rejected = [], []
    for path in _audio_files(Path(root)):
        m = _TESS_RE.match(path.stem)
        if m is None:
            rejected.append((path, "name is not OAF_word_emotion or YAF_word_emotion"))
            continue
        g = m.groupdict()
        emotion = normalise_emotion(g["emotion"])
        if emotion is None:
            rejected.append((path, f"unknown TESS emotion {g['emotion']!r}"))
            continue
        labels = {
            "word": g["word"].lower(),
            "sex": "female",
            "age_group": "older" if g["speaker"] == "OAF" else "younger",
            "raw_emotion": g["emotion"],
        }
        clips.append(Clip(path, emotion, f"tess:{g['speaker']}", "tess", labels))
    return _finish("tess", Path(root), clips, rejected, warn)


_ASED_EMOTIONS = {"n": "neutral", "f": "fearful", "h": "happy", "s": "sad", "a": "angry"}
_ASED_RE = re.compile(
    r"^(?P<letter>[nfhsaNFHSA])(?P<folder>[1-5])-(?P<sentence>\d\d)-(?P<repetition>\d\d)-"
    r"(?P<gender>0[12])-(?P<speaker>\d\d)$"
)


def parse_ased(root: str | Path, *, warn: bool = True) -> Corpus:
    """Parse an ASED v1 folder (Amharic; ``<NN><Emotion>/<x><n>-<yy>-<aa>-<gg>-<bb>.ext``).

    The emotion letter (``n`` neutral, ``f`` fearful, ``h`` happy, ``s`` sad, ``a`` angry; one
    original file spells it in upper case) must agree with the folder number ``n`` (01Neutral,
    02Fearful, 03Happy, 04Sad, 05Angry).

    Returns
    -------
    corpus : Corpus
        ``speaker`` ``"ased:NN"``; ``labels``: ``sentence``, ``repetition``, ``sex``,
        ``raw_emotion`` (the letter as spelt).

    Raises
    ------
    ParameterError
        If ``root`` is not a folder.
    """
    clips, rejected = [], []
    folders = {"1": "n", "2": "f", "3": "h", "4": "s", "5": "a"}
    for path in _audio_files(Path(root)):
        m = _ASED_RE.match(path.stem)
        if m is None:
            rejected.append((path, "name is not <x><n>-<yy>-<aa>-<gg>-<bb>"))
            continue
        g = m.groupdict()
        letter = g["letter"].lower()
        if folders[g["folder"]] != letter:
            rejected.append((path, f"emotion letter {g['letter']!r} does not match folder "
                                   f"number {g['folder']}"))
            continue
        labels = {"sentence": g["sentence"], "repetition": g["repetition"],
                  "sex": "female" if g["gender"] == "01" else "male",
                  "raw_emotion": g["letter"]}
        clips.append(Clip(path, _ASED_EMOTIONS[letter], f"ased:{g['speaker']}", "ased", labels))
    return _finish("ased", Path(root), clips, rejected, warn)


_NEMO_RE = re.compile(r"^(?P<speaker>[A-Z]{2}\d)_(?P<emotion>[a-z]+)_(?P<n>\d+)$")
_NEMO_EMOTIONS = ("anger", "fear", "happiness", "sadness", "surprised", "neutral")


def _nemo_sexes(root: Path) -> dict[str, str]:
    """Map each nEMO speaker to a sex, from ``data.tsv`` beside ``samples/`` (or nothing)."""
    for folder in (root, root.parent):
        table = folder / "data.tsv"
        if table.is_file():
            with table.open(newline="", encoding="utf-8") as fh:
                return {row["speaker_id"].strip(): row["gender"].strip()
                        for row in csv.DictReader(fh, delimiter="\t")}
    return {}


def parse_nemo(root: str | Path, *, warn: bool = True) -> Corpus:
    """Parse an nEMO folder (Polish; ``samples/<speaker>_<emotion>_<n>.ext``).

    Emotions map to the vocabulary: anger angry, fear fearful, happiness happy, sadness sad,
    surprised, neutral.

    Returns
    -------
    corpus : Corpus
        ``speaker`` ``"nemo:EB0"``; ``labels``: ``sex`` (from ``data.tsv`` when present),
        ``raw_emotion``.

    Raises
    ------
    ParameterError
        If ``root`` is not a folder.
    """
    root = Path(root)
    sexes = _nemo_sexes(root)
    clips, rejected = [], []
    for path in _audio_files(root):
        m = _NEMO_RE.match(path.stem)
        if m is None or m["emotion"] not in _NEMO_EMOTIONS:
            rejected.append((path, "name is not <speaker>_<emotion>_<n> with an nEMO emotion"))
            continue
        labels = {"raw_emotion": m["emotion"]}
        if m["speaker"] in sexes:
            labels["sex"] = sexes[m["speaker"]]
        clips.append(Clip(path, normalise_emotion(m["emotion"]), f"nemo:{m['speaker']}",
                          "nemo", labels))
    return _finish("nemo", root, clips, rejected, warn)


_KOREAN_RE = re.compile(r"^(?P<speaker>[a-z]{3})(?P<number>\d{5})$")
#: By hundreds: 1-100, 101-200, ... The corpus's README (and so shared/'s MANIFEST) says
#: 201-300 angry and 301-400 sad, but the scripts of its emotional-script speakers say the
#: reverse: nea00201 "너한테 그 말을 들으니까 정말 마음이 아프다" (it really hurts to hear
#: that from you), nea00301 "계속해서 저렇게 억지 주장을 하고 있으니 저 모양이지" (they keep
#: insisting on nonsense, no wonder; nen's are the same sentences). The audio agrees for every
#: speaker but one: 201-300 the darkest (lowest spectral centroid) of a speaker's four hundreds,
#: 301-400 the brightest, as sad and angry speech are.
_KOREAN_EMOTIONS = ("neutral", "happy", "sad", "angry")


def parse_korean(root: str | Path, *, warn: bool = True) -> Corpus:
    """Parse the Korean emotional speech sample (``<set>/<spk>/wav/<spk>NNNNN.ext``).

    The number gives the emotion: 1-100 neutral, 101-200 happy, 201-300 sad, 301-400 angry
    (as the corpus's scripts say; its README swaps sad and angry: :data:`_KOREAN_EMOTIONS`).

    Returns
    -------
    corpus : Corpus
        ``speaker`` ``"korean:ema"``; ``labels``: ``script`` (``plain-to-emotional`` or
        ``emotional-to-emotional``, the folder), ``raw_emotion`` (the number).

    Raises
    ------
    ParameterError
        If ``root`` is not a folder.
    """
    root = Path(root)
    clips, rejected = [], []
    for path in _audio_files(root):
        m = _KOREAN_RE.match(path.stem)
        number = int(m["number"]) if m else 0
        if m is None or not 1 <= number <= 400:
            rejected.append((path, "name is not <spk>NNNNN with NNNNN in 00001..00400"))
            continue
        if path.parent.name == "wav" and path.parent.parent.name != m["speaker"]:
            rejected.append((path, f"speaker {m['speaker']} does not match its folder "
                                   f"{path.parent.parent.name}"))
            continue
        labels = {"raw_emotion": m["number"]}
        script = path.relative_to(root).parts[0] if len(path.relative_to(root).parts) > 3 else ""
        if script:
            labels["script"] = script
        clips.append(Clip(path, _KOREAN_EMOTIONS[(number - 1) // 100], f"korean:{m['speaker']}",
                          "korean", labels))
    return _finish("korean", root, clips, rejected, warn)


_TUREV_RE = re.compile(r"^(?P<speaker>\d+)_(?P<code>[a-z]+)_(?P<word>.+)$")
_TUREV_FOLDERS = {"Angry": "angry", "Calm": "calm", "Happy": "happy", "Sad": "sad"}


def parse_turev(root: str | Path, *, warn: bool = True) -> Corpus:
    """Parse a TurEV-DB folder (Turkish single words; ``<Emotion>/<speaker>_<code>_<word>.ext``).

    Folders Angry, Calm, Happy, Sad map to angry, calm (RAVDESS's calm), happy, sad.

    Returns
    -------
    corpus : Corpus
        ``speaker`` ``"turev:1157"``; ``labels``: ``code``, ``word``, ``raw_emotion`` (the folder).

    Raises
    ------
    ParameterError
        If ``root`` is not a folder.
    """
    root = Path(root)
    clips, rejected = [], []
    for path in _audio_files(root):
        m = _TUREV_RE.match(path.stem)
        folder = path.parent.name
        if folder not in _TUREV_FOLDERS:
            rejected.append((path, f"folder {folder!r} is not one of {tuple(_TUREV_FOLDERS)}"))
            continue
        if m is None:
            rejected.append((path, "name is not <speaker>_<code>_<word>"))
            continue
        labels = {"code": m["code"], "word": m["word"], "raw_emotion": folder}
        clips.append(Clip(path, _TUREV_FOLDERS[folder], f"turev:{m['speaker']}", "turev",
                          labels))
    return _finish("turev", root, clips, rejected, warn)


_BAVED_RE = re.compile(
    r"^(?P<speaker>\d+)-(?P<gender>[mf])-(?P<age>\d+)-(?P<word>[0-6])-(?P<level>[012])-"
    r"(?P<id>\d+)$"
)


def parse_baved(root: str | Path, *, warn: bool = True) -> Corpus:
    """Parse a BAVED folder (Arabic single words; ``<word>/<spk>-<g>-<age>-<word>-<level>-<id>``).

    BAVED labels **arousal**, not emotion: level 0 low (tired, down), 1 neutral, 2 high (strong
    positive or negative emotion). Its clips have ``emotion`` ``""`` (so that an emotion
    selection leaves them out) and ``labels["arousal"]`` one of :data:`AROUSAL`.

    Returns
    -------
    corpus : Corpus
        ``speaker`` ``"baved:12"``; ``labels``: ``arousal``, ``word``, ``sex``, ``age``,
        ``raw_emotion`` (the level digit). The word is the name's (one original file,
        ``0/49-m-23-6-1-201``, sits in another word's folder; it is kept).

    Raises
    ------
    ParameterError
        If ``root`` is not a folder.
    """
    root = Path(root)
    clips, rejected = [], []
    for path in _audio_files(root):
        m = _BAVED_RE.match(path.stem)
        if m is None:
            rejected.append((path, "name is not <speaker>-<g>-<age>-<word>-<level>-<id>"))
            continue
        labels = {"arousal": AROUSAL[int(m["level"])], "word": m["word"],
                  "sex": "male" if m["gender"] == "m" else "female", "age": m["age"],
                  "raw_emotion": m["level"]}
        clips.append(Clip(path, "", f"baved:{m['speaker']}", "baved", labels))
    return _finish("baved", root, clips, rejected, warn)


def parse_folder_per_label(root: str | Path, *, name: str = "folder", warn: bool = True) -> Corpus:
    """Parse a ``<label>/<clip>`` layout: the folder right under ``root`` names the label.

    Folder names that spell a known emotion (``Anger``, ``fear``, ``pleasant_surprise``) are
    mapped onto the shared vocabulary; other names are kept, lower-cased, as the label.

    Parameters
    ----------
    root : str or Path
    name : str
        The corpus name written into each clip.
    warn : bool

    Returns
    -------
    corpus : Corpus
        ``speaker`` is ``""`` (the layout has none); ``labels``: ``raw_emotion`` (the folder name).

    Raises
    ------
    ParameterError
        If ``root`` is not a folder.
    """
    root = Path(root)
    clips, rejected = [], []
    for path in _audio_files(root):
        rel = path.relative_to(root)
        if len(rel.parts) < 2:
            rejected.append((path, "file sits directly in the root, not in a label folder"))
            continue
        raw = rel.parts[0]
        emotion = normalise_emotion(raw) or raw.strip().lower()
        clips.append(Clip(path, emotion, "", name, {"raw_emotion": raw}))
    return _finish(name, root, clips, rejected, warn)


#: Parsers by corpus name, for the command line.
PARSERS = {
    "ravdess": parse_ravdess,
    "emodb": parse_emodb,
    "tess": parse_tess,
    "ased": parse_ased,
    "nemo": parse_nemo,
    "korean": parse_korean,
    "turev": parse_turev,
    "baved": parse_baved,
    "folder": parse_folder_per_label,
}


def parse_corpus(name: str, root: str | Path, *, warn: bool = True) -> Corpus:
    """Parse ``root`` with the parser named ``name`` (a key of :data:`PARSERS`).

    Raises
    ------
    ParameterError
        If ``name`` is unknown or ``root`` is not a folder.
    """
    if name not in PARSERS:
        raise ParameterError(f"unknown corpus layout {name!r}; choose from {tuple(PARSERS)}")
    return PARSERS[name](root, warn=warn)


def select(
    clips: Iterable[Clip],
    emotions: str | Collection[str] | None = None,
    *,
    corpora: Collection[str] | None = None,
    speakers: Collection[str] | None = None,
    where: Mapping[str, str | Collection[str]] | None = None,
) -> list[Clip]:
    """Keep the clips of some emotions, corpora, speakers or other labels.

    Parameters
    ----------
    clips : iterable of Clip
    emotions : str or collection of str, optional
        A name of :data:`SUBSETS` (``"4class"`` = neutral, happy, sad, angry) or emotion names.
    corpora, speakers : collection of str, optional
    where : mapping of str to str or collection of str, optional
        Other labels to match, e.g. ``{"vocal_channel": "speech", "intensity": ["strong"]}``.

    Returns
    -------
    clips : list of Clip

    Raises
    ------
    ParameterError
        If ``emotions`` names an unknown subset.
    """
    if isinstance(emotions, str):
        if emotions not in SUBSETS:
            raise ParameterError(
                f"unknown emotion subset {emotions!r}; choose from {tuple(SUBSETS)}"
            )
        emotions = SUBSETS[emotions]
    keep_emotions = None if emotions is None else set(emotions)
    conditions = {
        key: {value} if isinstance(value, str) else set(value)
        for key, value in (where or {}).items()
    }
    out = []
    for clip in clips:
        if keep_emotions is not None and clip.emotion not in keep_emotions:
            continue
        if corpora is not None and clip.corpus not in corpora:
            continue
        if speakers is not None and clip.speaker not in speakers:
            continue
        if any(clip.labels.get(key) not in values for key, values in conditions.items()):
            continue
        out.append(clip)
    return out


def combine(*corpora: Corpus) -> list[Clip]:
    """Concatenate the clips of several corpora (speaker ids are already corpus-prefixed)."""
    return [clip for corpus in corpora for clip in corpus.clips]


_BASE_COLUMNS = ("path", "corpus", "speaker", "emotion")


def write_feature_csv(
    path: str | Path,
    clips: Sequence[Clip],
    X: np.ndarray,
    feature_names: Sequence[str],
) -> Path:
    """Write a feature table: one row per clip, its labels, then one column per feature.

    Parameters
    ----------
    path : str or Path
    clips : sequence of Clip
    X : np.ndarray [shape=(len(clips), n_features)]
    feature_names : sequence of str
        Column names, e.g. ``FeatureConfig.feature_names()``.

    Returns
    -------
    path : Path

    Raises
    ------
    ParameterError
        If the shapes of ``clips``, ``X`` and ``feature_names`` disagree.
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape != (len(clips), len(feature_names)):
        raise ParameterError(
            f"feature matrix has shape {X.shape}, expected ({len(clips)}, {len(feature_names)})"
        )
    label_keys = sorted({key for clip in clips for key in clip.labels})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*_BASE_COLUMNS, *label_keys, *feature_names])
        for clip, row in zip(clips, X, strict=True):
            writer.writerow(
                [str(clip.path), clip.corpus, clip.speaker, clip.emotion]
                + [clip.labels.get(key, "") for key in label_keys]
                + [repr(float(v)) for v in row]
            )
    return path


def read_feature_csv(
    path: str | Path, feature_names: Sequence[str]
) -> tuple[list[Clip], np.ndarray]:
    """Read a table written by :func:`write_feature_csv`.

    Returns
    -------
    clips : list of Clip
    X : np.ndarray [shape=(n_clips, len(feature_names))], float32

    Raises
    ------
    ParameterError
        If a feature column is missing.
    """
    with Path(path).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if rows:
        missing = [name for name in feature_names if name not in rows[0]]
        if missing:
            raise ParameterError(
                f"{path}: {len(missing)} feature column(s) missing, e.g. {missing[0]!r}"
            )
    names = set(feature_names)
    clips, X = [], np.empty((len(rows), len(feature_names)), dtype=np.float32)
    for i, row in enumerate(rows):
        labels = {k: v for k, v in row.items() if k not in names and k not in _BASE_COLUMNS}
        clips.append(Clip(Path(row["path"]), row["emotion"], row["speaker"], row["corpus"], labels))
        X[i] = [float(row[name]) for name in feature_names]
    return clips, X

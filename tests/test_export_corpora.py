"""Corpus parsers on file names the tests make (no audio is decoded by the parsers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.corpora import (
    EMOTIONS,
    combine,
    normalise_emotion,
    parse_corpus,
    parse_emodb,
    parse_folder_per_label,
    parse_ravdess,
    parse_tess,
    read_feature_csv,
    select,
    write_feature_csv,
)
from export.data import missing_corpus
from ser_edge.errors import ParameterError


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_ravdess_speech_and_song_labels(tmp_path):
    _touch(
        tmp_path,
        "Actor_01/03-01-05-02-01-02-01.wav",  # speech, angry, strong, statement 1, rep 2, actor 1
        "Actor_02/03-02-03-01-02-01-02.flac",  # song, happy, normal, actor 2
        "Actor_02/01-01-08-02-02-02-02.wav",  # full-AV speech, surprised
        "Actor_02/readme.txt",  # not audio: ignored
    )
    corpus = parse_ravdess(tmp_path)
    assert corpus.rejected == []
    by_name = {c.path.name: c for c in corpus.clips}
    angry = by_name["03-01-05-02-01-02-01.wav"]
    assert angry.emotion == "angry"
    assert angry.speaker == "ravdess:01"
    assert angry.corpus == "ravdess"
    assert angry.labels["vocal_channel"] == "speech"
    assert angry.labels["intensity"] == "strong"
    assert angry.labels["statement"] == "01"
    assert angry.labels["repetition"] == "02"
    assert angry.labels["sex"] == "male"
    assert angry.labels["modality"] == "audio-only"
    song = by_name["03-02-03-01-02-01-02.flac"]
    assert (song.emotion, song.labels["vocal_channel"], song.labels["sex"]) == (
        "happy",
        "song",
        "female",
    )
    assert by_name["01-01-08-02-02-02-02.wav"].labels["modality"] == "full-AV"
    assert corpus.counts() == {"angry": 1, "happy": 1, "surprised": 1}


def test_ravdess_codes_map_to_the_shared_vocabulary(tmp_path):
    _touch(tmp_path, *[f"Actor_03/03-01-{i:02d}-01-01-01-03.wav" for i in range(1, 9)])
    corpus = parse_ravdess(tmp_path)
    assert [c.emotion for c in corpus.clips] == list(EMOTIONS)


def test_ravdess_reports_non_conforming_files(tmp_path):
    _touch(
        tmp_path,
        "Actor_01/03-01-05-01-01-01-01.wav",  # fine
        "Actor_01/03-01-09-01-01-01-01.wav",  # emotion code 09 does not exist
        "Actor_01/03-01-05-01-01-01-02.wav",  # actor 02 inside Actor_01
        "Actor_01/03-01-01-02-01-01-01.wav",  # neutral has no strong intensity
        "Actor_01/03-02-07-01-01-01-01.wav",  # song has no disgust
        "Actor_01/03-01-05-01-01-01-25.wav",  # actor 25
        "Actor_01/my recording.wav",
    )
    with pytest.warns(UserWarning, match="6 file"):
        corpus = parse_ravdess(tmp_path)
    assert [c.path.name for c in corpus.clips] == ["03-01-05-01-01-01-01.wav"]
    reasons = {p.name: r for p, r in corpus.rejected}
    assert len(reasons) == 6
    assert "folder" in reasons["03-01-05-01-01-01-02.wav"]
    assert "strong" in reasons["03-01-01-02-01-01-01.wav"]
    assert "song" in reasons["03-02-07-01-01-01-01.wav"]
    assert "my recording.wav" in reasons


def test_emodb_letters_and_rejects(tmp_path):
    _touch(
        tmp_path,
        "03a01Wa.wav",
        "08b10Lc.flac",
        "10a05Eb.wav",
        "11b02Ac.wav",
        "13a07Fa.wav",
        "14b09Tb.wav",
        "16a04Na.wav",
        "03a01Xa.wav",  # unknown letter
        "3a01Wa.wav",  # one-digit speaker
    )
    with pytest.warns(UserWarning, match="2 file"):
        corpus = parse_emodb(tmp_path)
    got = {c.path.stem: (c.emotion, c.speaker, c.labels["sex"]) for c in corpus.clips}
    assert got == {
        "03a01Wa": ("angry", "emodb:03", "male"),
        "08b10Lc": ("boredom", "emodb:08", "female"),
        "10a05Eb": ("disgust", "emodb:10", "male"),
        "11b02Ac": ("fearful", "emodb:11", "male"),
        "13a07Fa": ("happy", "emodb:13", "female"),
        "14b09Tb": ("sad", "emodb:14", "female"),
        "16a04Na": ("neutral", "emodb:16", "female"),
    }
    assert corpus.clips[0].labels["text"] == "a01"
    assert sorted(p.name for p, _ in corpus.rejected) == ["03a01Xa.wav", "3a01Wa.wav"]
    # boredom is not in the shared vocabulary: selecting it away leaves the RAVDESS emotions
    assert "boredom" not in {c.emotion for c in select(corpus.clips, EMOTIONS)}


def test_tess_names_including_pleasant_surprise(tmp_path):
    _touch(
        tmp_path,
        "OAF_angry/OAF_back_angry.wav",
        "YAF_pleasant_surprised/YAF_bath_ps.wav",
        "OAF_Fear/OAF_bean_fear.wav",
        "YAF_sad/YAF_wire_sad.wav",
        "OAF_neutral/OA_bite_neutral.wav",  # a known mis-named file: reported
        "YAF_x/YAF_bath_bliss.wav",  # unknown emotion
    )
    with pytest.warns(UserWarning, match="2 file"):
        corpus = parse_tess(tmp_path)
    got = {c.path.stem: (c.emotion, c.speaker, c.labels["word"]) for c in corpus.clips}
    assert got == {
        "OAF_back_angry": ("angry", "tess:OAF", "back"),
        "YAF_bath_ps": ("surprised", "tess:YAF", "bath"),
        "OAF_bean_fear": ("fearful", "tess:OAF", "bean"),
        "YAF_wire_sad": ("sad", "tess:YAF", "wire"),
    }
    assert {p.name for p, _ in corpus.rejected} == {"OA_bite_neutral.wav", "YAF_bath_bliss.wav"}


def test_folder_per_label(tmp_path):
    _touch(tmp_path, "Anger/a.wav", "happy/b.flac", "pleasant_surprise/c.wav", "laughter/d.wav")
    _touch(tmp_path, "loose.wav")
    with pytest.warns(UserWarning, match="1 file"):
        corpus = parse_folder_per_label(tmp_path, name="mine")
    got = {c.path.name: c.emotion for c in corpus.clips}
    assert got == {"a.wav": "angry", "b.flac": "happy", "c.wav": "surprised", "d.wav": "laughter"}
    assert {c.corpus for c in corpus.clips} == {"mine"}
    assert [p.name for p, _ in corpus.rejected] == ["loose.wav"]


def test_normalise_emotion():
    assert normalise_emotion("Pleasant Surprise") == "surprised"
    assert normalise_emotion("ps") == "surprised"
    assert normalise_emotion("FEAR") == "fearful"
    assert normalise_emotion("bliss") is None


def test_select_subsets_and_labels(tmp_path):
    _touch(
        tmp_path / "r",
        *[f"Actor_0{a}/03-01-0{e}-01-01-01-0{a}.wav" for a in (1, 2) for e in (1, 2, 3, 4, 5, 6)],
    )
    _touch(tmp_path / "e", "03a01Wa.wav", "08b10Lc.wav")
    clips = combine(parse_ravdess(tmp_path / "r"), parse_emodb(tmp_path / "e"))
    four = select(clips, "4class")
    assert {c.emotion for c in four} == {"neutral", "happy", "sad", "angry"}
    assert len(four) == 4 * 2 + 1
    assert len(select(clips, ["angry"], corpora=["emodb"])) == 1
    assert len(select(clips, speakers=["ravdess:02"])) == 6
    assert len(select(clips, where={"sex": "male"})) == 6 + 1
    with pytest.raises(ParameterError, match="unknown emotion subset"):
        select(clips, "9class")


def test_parse_corpus_errors(tmp_path):
    with pytest.raises(ParameterError, match="unknown corpus layout"):
        parse_corpus("iemocap", tmp_path)
    with pytest.raises(ParameterError, match="not found"):
        parse_corpus("ravdess", tmp_path / "missing")


def test_feature_csv_round_trip(tmp_path, rng):
    _touch(tmp_path / "r", "Actor_01/03-01-05-01-01-01-01.wav", "Actor_02/03-01-04-01-01-01-02.wav")
    clips = parse_ravdess(tmp_path / "r").clips
    X = rng.normal(size=(2, 3)).astype(np.float32)
    names = ["f0", "f1", "f2"]
    out = write_feature_csv(tmp_path / "t.csv", clips, X, names)
    header = out.read_text().splitlines()[0].split(",")
    assert header[:4] == ["path", "corpus", "speaker", "emotion"]
    assert "intensity" in header and header[-3:] == names
    back, X2 = read_feature_csv(out, names)
    assert [c.emotion for c in back] == [c.emotion for c in clips]
    assert back[0].labels["actor"] == "01"
    np.testing.assert_array_equal(X2, X)
    with pytest.raises(ParameterError, match="shape"):
        write_feature_csv(tmp_path / "bad.csv", clips, X[:1], names)


# -- the five corpora added for cross-corpus work ------------------------------------------------


def test_ased_names_folders_and_rejects(tmp_path):
    from export.corpora import parse_ased

    _touch(
        tmp_path,
        "01Neutral/n1-01-01-01-01.opus",  # neutral, sentence 1, female, speaker 01
        "04Sad/S4-04-02-01-29.opus",  # the original's one upper-case letter
        "05Angry/a5-12-03-02-65.opus",  # male, speaker 65
        "03Happy/a3-01-01-01-02.opus",  # angry letter in the happy folder: rejected
        "03Happy/h3-01-01-03-02.opus",  # gender 03: rejected
    )
    with pytest.warns(UserWarning, match="2 file"):
        corpus = parse_ased(tmp_path)
    by_name = {c.path.name: c for c in corpus.clips}
    assert by_name["n1-01-01-01-01.opus"].emotion == "neutral"
    assert by_name["n1-01-01-01-01.opus"].labels["sex"] == "female"
    assert by_name["S4-04-02-01-29.opus"].emotion == "sad"
    assert by_name["S4-04-02-01-29.opus"].speaker == "ased:29"
    assert by_name["a5-12-03-02-65.opus"].labels["sex"] == "male"
    assert {p.name for p, _ in corpus.rejected} == {"a3-01-01-01-02.opus",
                                                    "h3-01-01-03-02.opus"}


def test_nemo_names_and_table(tmp_path):
    from export.corpora import parse_nemo

    _touch(tmp_path, "samples/EB0_anger_1.opus", "samples/WR0_surprised_64.opus",
           "samples/KS0_sadness_3.opus", "samples/KS0_joy_3.opus")
    (tmp_path / "data.tsv").write_text(
        "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage\n"
        "EB0_anger_1.wav\tanger\tx\tx\t        EB0\tfemale\t27\n")
    with pytest.warns(UserWarning, match="1 file"):
        corpus = parse_nemo(tmp_path)
    assert [(c.speaker, c.emotion) for c in corpus.clips] == [
        ("nemo:EB0", "angry"), ("nemo:KS0", "sad"), ("nemo:WR0", "surprised")]
    assert corpus.clips[0].labels["sex"] == "female"  # speaker ids have leading spaces there
    assert "sex" not in corpus.clips[1].labels


def test_korean_numbers_map_to_emotions(tmp_path):
    from export.corpora import parse_korean

    _touch(tmp_path, *[f"plain-to-emotional/ema/wav/ema{n:05d}.opus" for n in (1, 100, 101, 250,
                                                                              400)],
           "emotional-to-emotional/neo/wav/neo00401.opus",  # beyond 400: rejected
           "emotional-to-emotional/neo/wav/nea00001.opus")  # another speaker's folder: rejected
    with pytest.warns(UserWarning, match="2 file"):
        corpus = parse_korean(tmp_path)
    assert [c.emotion for c in corpus.clips] == ["neutral", "neutral", "happy", "sad", "angry"]
    assert {c.speaker for c in corpus.clips} == {"korean:ema"}
    assert corpus.clips[0].labels["script"] == "plain-to-emotional"


def test_korean_angry_is_brighter_than_sad_for_nearly_every_speaker():
    """The real Korean clips as parsed: each speaker's angry clips have a higher mean spectral
    centroid than their sad ones (angry speech is brighter), for at least 13 of the 15 speakers.
    With the corpus README's order (201-300 angry, 301-400 sad) it holds for none."""
    import librosa

    from export.corpora import parse_corpus
    from export.paths import corpus_dir
    from ser_edge import audio

    root = corpus_dir("korean")
    if root is None:
        pytest.skip(missing_corpus("korean"))
    centroid: dict[tuple[str, str], list[float]] = {}
    for clip in parse_corpus("korean", root, warn=False).clips:
        if clip.emotion not in ("angry", "sad"):
            continue
        S = np.abs(librosa.stft(audio.load(clip.path, sr=16000)[0], n_fft=512, hop_length=256))
        rms = librosa.feature.rms(S=S, frame_length=512)[0]
        loud = librosa.amplitude_to_db(rms, ref=np.max) > -30
        value = float(librosa.feature.spectral_centroid(S=S, sr=16000)[0][loud].mean())
        centroid.setdefault((clip.speaker, clip.emotion), []).append(value)
    speakers = {s for s, _ in centroid}
    brighter = [s for s in speakers
                if np.mean(centroid[s, "angry"]) > np.mean(centroid[s, "sad"])]
    assert len(speakers) == 15 and len(brighter) >= 13, sorted(speakers - set(brighter))


def test_turev_folders_and_calm(tmp_path):
    from export.corpora import parse_turev

    _touch(tmp_path, "Angry/1157_kz_acik.opus", "Calm/1234_hl_algi.opus",
           "Happy/6783_sk_beste.opus", "Sad/7895_mt_x.opus", "Bored/1157_kz_acik.opus")
    with pytest.warns(UserWarning, match="1 file"):
        corpus = parse_turev(tmp_path)
    assert [(c.emotion, c.speaker) for c in corpus.clips] == [
        ("angry", "turev:1157"), ("calm", "turev:1234"), ("happy", "turev:6783"),
        ("sad", "turev:7895")]


def test_baved_is_arousal_not_emotion(tmp_path):
    from export.corpora import parse_baved

    _touch(tmp_path, "0/0-m-21-0-1-105.opus", "0/3-f-21-0-0-1.opus", "2/12-m-22-2-2-9.opus",
           "0/49-m-23-6-1-201.opus",  # in another word's folder, as one original file: kept
           "1/1-m-20-1-3-1.opus")  # level 3: rejected
    with pytest.warns(UserWarning, match="1 file"):
        corpus = parse_baved(tmp_path)
    assert [c.emotion for c in corpus.clips] == ["", "", "", ""]
    assert [c.labels["arousal"] for c in corpus.clips] == ["neutral", "low", "neutral", "high"]
    assert [c.speaker for c in corpus.clips] == ["baved:0", "baved:3", "baved:49", "baved:12"]
    assert corpus.clips[1].labels["sex"] == "female"
    assert select(corpus.clips, "4class") == []  # an emotion selection leaves them out


# The counts of each corpus's MANIFEST.txt in ../shared/data.
_MANIFESTS = {
    "ravdess": (1440, 24, {"neutral": 96, "calm": 192, "happy": 192, "sad": 192, "angry": 192,
                           "fearful": 192, "disgust": 192, "surprised": 192}),
    "emodb": (535, 10, {"angry": 127, "boredom": 81, "disgust": 46, "fearful": 69, "happy": 71,
                        "neutral": 79, "sad": 62}),
    "ased": (2474, 65, {"neutral": 522, "fearful": 510, "happy": 486, "sad": 470, "angry": 486}),
    "nemo": (4481, 9, {"neutral": 809, "sad": 769, "happy": 749, "angry": 749, "fearful": 736,
                       "surprised": 669}),
    "korean": (300, 15, {"neutral": 75, "happy": 75, "angry": 75, "sad": 75}),
    "turev": (1735, 6, {"angry": 487, "sad": 483, "calm": 408, "happy": 357}),
    "baved": (1935, 60, {"": 1935}),
}


@pytest.mark.parametrize("name", sorted(_MANIFESTS))
def test_real_corpus_counts_match_the_manifest(name):
    from export.corpora import parse_corpus
    from export.data import missing_corpus
    from export.paths import corpus_dir

    root = corpus_dir(name)
    if root is None:
        pytest.skip(missing_corpus(name))
    corpus = parse_corpus(name, root)
    n_clips, n_speakers, emotions = _MANIFESTS[name]
    assert corpus.rejected == []
    assert len(corpus) == n_clips
    assert len(corpus.counts("speaker")) == n_speakers
    assert corpus.counts() == dict(sorted(emotions.items()))
    assert all(c.speaker.startswith(f"{name}:") and c.corpus == name for c in corpus.clips)
    if name == "baved":
        assert corpus.counts("arousal") == {"high": 678, "low": 585, "neutral": 672}


# -- leave one corpus out --------------------------------------------------------------------------


def test_loco_splits_train_on_the_others_and_test_the_shared_emotions():
    from export.protocols import loco_splits

    corpora = np.array(["a"] * 4 + ["b"] * 3 + ["c"] * 2 + ["d"] * 2)
    emotions = np.array(["happy", "sad", "calm", "angry",  # a
                         "happy", "sad", "disgust",  # b: disgust only here
                         "", "",  # c: arousal only (BAVED)
                         "sad", "happy"])  # d
    splits = loco_splits(corpora, emotions)
    assert [s.name for s in splits] == ["loco a", "loco b", "loco d"]
    a, b, d = splits
    assert a.tested == ("a",)
    np.testing.assert_array_equal(a.train, np.arange(4, 11))  # every other clip, BAVED's too
    np.testing.assert_array_equal(a.test, [0, 1])  # calm and angry: nobody else has them
    np.testing.assert_array_equal(b.test, [4, 5])  # its disgust cannot be scored
    np.testing.assert_array_equal(d.test, [9, 10])
    for s in splits:
        assert not set(s.train) & set(s.test)
        assert set(corpora[s.train]) == set(corpora) - set(s.tested)
    with pytest.raises(ParameterError, match="fewer than two emotions"):
        loco_splits(np.array(["a", "a", "b", "b"]), np.array(["happy", "sad", "happy", "calm"]))
    with pytest.raises(ParameterError, match="two corpora"):
        loco_splits(np.array(["a", "a"]), np.array(["happy", "sad"]))

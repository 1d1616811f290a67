"""Named libraries with their own parameters: the TOML configuration, thinning, replace."""

from __future__ import annotations

import numpy as np
import pytest

from rci.errors import AlreadyExistsError, NotFoundError, RciError
from rci.library.store import VideoFingerprints
from rci.match.recall import RecallParams, recall
from rci.serving.libraries import Libraries, LibrarySettings, read_config, thin

DIM = 16


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def video(video_id: str, n: int, seed: int, step: float = 1.0) -> VideoFingerprints:
    rng = np.random.default_rng(seed)
    return VideoFingerprints(
        video_id, unit(rng.normal(size=(n, DIM))), np.arange(n, dtype=np.float32) * step, n * step
    )


def test_config_gives_each_library_its_parameters(tmp_path) -> None:
    path = tmp_path / "libraries.toml"
    path.write_text(
        """
[libraries.main]

[libraries.copyright]
index = "ivfpq"
nprobe = 64
audio_nprobe = 16
nlist = 4096
k = 20
candidates = 8
min_similarity = 0.3
video_candidates = 0
fingerprint_interval = 2.0

[libraries.blocklist]
video_min_similarity = 0.4
"""
    )
    config = read_config(path)
    assert list(config) == ["main", "copyright", "blocklist"]
    assert config["main"] == LibrarySettings()
    assert config["copyright"] == LibrarySettings(
        index="ivfpq",
        nprobe=64,
        audio_nprobe=16,
        nlist=4096,
        fingerprint_interval=2.0,
        recall=RecallParams(k=20, candidates=8, min_similarity=0.3, video_candidates=0),
    )
    assert config["blocklist"].recall.video_min_similarity == 0.4
    libs = Libraries(tmp_path / "data", config, descriptor="d", dim=64)
    assert libs.names == ["main", "copyright", "blocklist"]
    assert libs.index("copyright").use_snapshots and libs.index("copyright").nprobe == 64
    assert libs.index("copyright").audio_nprobe == 16
    assert not libs.index("main").use_snapshots


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[libraries.main]\nnprob = 3\n", "unknown keys \\['nprob'\\]"),
        ('[libraries.main]\nindex = "hnsw"\n', "index must be 'flat' or 'ivfpq'"),
        ("[libraries.main]\nk = 0\n", "k and candidates must be >= 1"),
        ("[libraries.main]\nfingerprint_interval = -1\n", "fingerprint_interval"),
        ("[libraries.main]\nrebuild_growth = 1\n", "rebuild_growth must be 0 or > 1"),
        ("[libraries.main]\nk = true\n", "k must be int"),
        ("[libraries.main]\nk = [1]\n", "k must be int"),
        ("[libraries.main]\nk = 2.5\n", "k must be int"),
        ("[libraries.main]\nnprobe = 64.0\n", "nprobe must be int"),
        ("[libraries.main]\naudio_nprobe = 0\n", "audio_nprobe and pq_m must be >= 1"),
        ("[libraries.main]\nindex = 1\n", "index must be str"),
        ('[libraries.main]\nverdict = "best"\n', "unknown verdict 'best'; known: matchlite"),
        ("[library.main]\n", "expected \\[libraries.NAME\\] tables"),
        ("libraries = 3\n", "expected \\[libraries.NAME\\] tables"),
        ("[libraries]\n", "expected \\[libraries.NAME\\] tables"),
        ("[libraries.main\n", "cannot read library configuration"),
        ('[libraries.main]\nstore = "redis"\n', "store must be 'local' or 'milvus'"),
        ('[libraries.main]\nstore = "milvus"\n', "a milvus library needs a uri"),
        (
            '[libraries.main]\nstore = "milvus"\nuri = "m.db"\nindex = "ivfpq"\n',
            "indexed by milvus_index, not index",
        ),
        (
            '[libraries.main]\nstore = "milvus"\nuri = "m.db"\nconsistency = "Often"\n',
            "consistency must be one of",
        ),
        ('[libraries.main]\nstore = "milvus"\nuri = "m.db"\ncollection = "a-b"\n', "prefix"),
        ("[libraries.main]\nindex_params = 3\n", "index_params must be dict"),
        (
            '[libraries.main]\nstore = "milvus"\nuri = "m.db"\nmilvus_timeout = 0\n',
            "timeout must be 0-600 seconds",
        ),
    ],
)
def test_bad_config_is_refused_with_the_reason(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "libraries.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_config(path)


def test_missing_config_and_bad_library_name(tmp_path) -> None:
    with pytest.raises(ValueError, match="cannot read library configuration"):
        read_config(tmp_path / "absent.toml")
    path = tmp_path / "libraries.toml"
    path.write_text("[libraries.Main]\n")
    with pytest.raises(ValueError, match="library name 'Main' must be 1-64 lowercase"):
        read_config(path)
    with pytest.raises(ValueError, match="library name 'Main'"):
        Libraries(tmp_path, ["Main"], descriptor="d", dim=DIM)
    path.write_text('[libraries.main]\nindex = "ivfpq"\npq_m = 24\n')
    with pytest.raises(ValueError, match="pq_m 24 must divide 512"):
        Libraries(tmp_path, read_config(path), descriptor="d", dim=512)
    # Floats take ints (TOML writes 2 for 2.0).
    path.write_text("[libraries.main]\nfingerprint_interval = 2\n")
    assert read_config(path)["main"].fingerprint_interval == 2


def test_thin_keeps_one_fingerprint_per_interval() -> None:
    v = video("a", 10, 0)
    kept = thin(v, 2.0)
    assert kept.timestamps.tolist() == [0, 2, 4, 6, 8]
    np.testing.assert_array_equal(kept.embeddings, v.embeddings[::2])
    assert kept.duration == v.duration and thin(v, 0.0) is v
    # 29.97 fps sources sit a hair off the whole seconds: still every other second.
    drift = video("b", 7, 1, step=1.001)
    assert len(thin(drift, 2.0).timestamps) == 4
    assert thin(video("c", 5, 2), 10.0).timestamps.tolist() == [0]


def test_each_library_stores_at_its_own_interval(tmp_path) -> None:
    settings = {"dense": LibrarySettings(), "sparse": LibrarySettings(fingerprint_interval=2.0)}
    libs = Libraries(tmp_path, settings, descriptor="d", dim=DIM)
    assert libs.add("dense", video("a", 9, 0)) == (9, False)
    assert libs.add("sparse", video("a", 9, 0)) == (5, False)
    stored = libs.index("sparse").video("a")
    assert stored.timestamps.tolist() == [0, 2, 4, 6, 8] and stored.duration == 9.0


def test_recall_uses_each_library_s_parameters(tmp_path) -> None:
    # The same library content recalled with k = 1 and k = 3: with k = 1 each query frame's
    # single neighbour votes, so fewer videos come back.
    libs = Libraries(tmp_path, ["lib"], descriptor="d", dim=DIM)
    for n in range(6):
        libs.add("lib", video(f"v{n}", 8, n))
    query = unit(np.random.default_rng(99).normal(size=(12, DIM)))
    few = recall(
        libs.index("lib"), query, RecallParams(k=1, candidates=6, min_similarity=-1.0,
                                               video_candidates=0)
    )  # fmt: skip
    many = recall(
        libs.index("lib"), query, RecallParams(k=3, candidates=6, min_similarity=-1.0,
                                               video_candidates=0)
    )  # fmt: skip
    assert len(few) < len(many) <= 6


def test_video_level_recall_adds_a_copy_frame_votes_miss(tmp_path) -> None:
    # A copy whose every frame is heavily edited (cosine ~0.4 per frame, below the vote
    # threshold) still averages to a mean descriptor near the source's: video-level recall
    # brings the source in; with it off, nothing is recalled.
    rng = np.random.default_rng(5)
    libs = Libraries(tmp_path, ["lib"], descriptor="d", dim=64)
    base = unit(rng.normal(size=(64,)) * 0.2 + rng.normal(size=(30, 64)))
    source = VideoFingerprints("source", base, np.arange(30, dtype=np.float32), 30.0)
    libs.add("lib", source)
    for n in range(4):
        other = unit(rng.normal(size=(30, 64)))
        libs.add("lib", VideoFingerprints(f"other{n}", other, source.timestamps, 30.0))
    query = unit(base + 2.5 * unit(rng.normal(size=(30, 64))))
    assert float((query * base).sum(axis=1).max()) < 0.6
    frames_only = RecallParams(min_similarity=0.6, video_candidates=0)
    assert recall(libs.index("lib"), query, frames_only) == []
    both = RecallParams(min_similarity=0.6, video_candidates=2, video_min_similarity=0.5)
    assert [c.video_id for c in recall(libs.index("lib"), query, both)] == ["source"]


def test_replace_swaps_a_video_in_one_record(tmp_path) -> None:
    libs = Libraries(tmp_path, ["lib"], descriptor="d", dim=DIM)
    libs.add("lib", video("a", 4, 0))
    libs.add("lib", video("b", 3, 1))
    reader = libs.index("lib")
    with pytest.raises(AlreadyExistsError):
        libs.add("lib", video("a", 6, 2))
    assert libs.add("lib", video("a", 6, 2), replace=True) == (6, True)
    log = (tmp_path / "lib" / "log.jsonl").read_text().splitlines()
    assert len(log) == 3 and '"delete"' not in log[-1]  # one add record, no delete
    assert not (tmp_path / "lib" / "videos" / "000000000.npy").exists()
    for index in (libs.index("lib"), Libraries(tmp_path, ["lib"], descriptor="d", dim=DIM)
                  .index("lib")):  # fmt: skip
        assert index is not reader or index.ntotal == 9
        assert index.video_ids == ["b", "a"] and index.ntotal == 9 and index.means.ntotal == 2
        np.testing.assert_array_equal(index.video("a").embeddings, video("a", 6, 2).embeddings)
        # The old fingerprints are gone from search: the old video's frames find nothing of a.
        _, ids = index.search(video("a", 4, 0).embeddings, 1)
        assert not np.isin(ids, np.arange(4)).any()
    # Replacing an id the library does not hold adds it.
    assert libs.add("lib", video("c", 2, 3), replace=True) == (2, False)
    assert libs.index("lib").video_ids == ["b", "a", "c"]


def test_unknown_library_in_add_and_index(tmp_path) -> None:
    libs = Libraries(tmp_path, {"main": LibrarySettings()}, descriptor="d", dim=DIM)
    with pytest.raises(NotFoundError, match="unknown library 'other'"):
        libs.add("other", video("a", 2, 0))
    with pytest.raises(NotFoundError, match="unknown library 'other'"):
        libs.index("other")


def test_serve_refuses_a_bad_library_name_before_starting_triton(tmp_path, capsys) -> None:
    # Caught here, not as models that fail to load with the reason only in the server log.
    from rci_client.cli import main as cli

    args = ["serve", "--data-dir", str(tmp_path / "d"), "--work-dir", str(tmp_path / "w")]
    assert cli([*args, "--libraries", "main,Block List"]) == 2
    assert "library name 'Block List' must be 1-64 lowercase" in capsys.readouterr().out
    config = tmp_path / "libraries.toml"
    config.write_text("libraries = 3\n")
    assert cli([*args, "--libraries-config", str(config)]) == 2
    assert "expected [libraries.NAME] tables" in capsys.readouterr().out  # not eaten as markup
    assert not (tmp_path / "w").exists()  # nothing was started


def test_a_milvus_library_s_settings_and_its_lite_file_in_the_data_directory(tmp_path) -> None:
    path = tmp_path / "libraries.toml"
    path.write_text(
        '[libraries.shared]\nstore = "milvus"\nuri = "lite/m.db"\ncollection = "team_a"\n'
        'milvus_index = "IVF_FLAT"\nindex_params = {nlist = 1024}\n'
        'search_params = {nprobe = 64}\nconsistency = "Bounded"\n'
        '[libraries.remote]\nstore = "milvus"\nuri = "http://milvus:19530"\ntoken = "u:p"\n'
        'milvus_index = "HNSW"\n'
    )
    config = read_config(path)
    lite = config["shared"].milvus_settings(tmp_path / "data")
    assert lite.uri == str((tmp_path / "data" / "lite" / "m.db").resolve()) and lite.lite
    assert (lite.prefix, lite.index_type, lite.consistency) == ("team_a", "IVF_FLAT", "Bounded")
    assert lite.index_params == {"nlist": 1024} and lite.search_params == {"nprobe": 64}
    remote = config["remote"].milvus_settings(tmp_path / "data")
    assert (remote.uri, remote.token, remote.lite) == ("http://milvus:19530", "u:p", False)
    assert remote.index_type == "HNSW"  # a server builds it; Milvus Lite is refused it
    libs = Libraries(tmp_path / "data", config, descriptor="d", dim=64)
    assert libs.is_milvus("shared")
    with pytest.raises(RciError, match="kept in Milvus, not in a folder"):
        libs.folder("shared")

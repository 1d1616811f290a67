"""The served ensembles end to end: real tritonserver, real video, real models, HTTP and gRPC."""

import dataclasses
import json
import urllib.request

import av
import numpy as np
import pytest
import tritonclient.http as httpclient

from rci.describe.descriptor import Descriptor, DescriptorModel
from rci.library.background import background_path, read_background
from rci.match.alignment import AlignParams
from rci.match.matchlite import MatchLite, Verdict
from rci.match.normalize import Background
from rci.match.pair_input import match_inputs, stack_inputs
from rci.match.recall import recall_recurring
from rci.match.verdict import match_candidates
from rci.match.views import QueryViews
from rci.preprocess.pipeline import EMBED_FRAMES, preprocess
from rci.serving.libraries import Libraries
from rci.serving.server import ADMIN_HEADER
from rci_client import RciClient, RciClientError
from tests.media_factory import drifting, encode_with_audio, melody
from tests.test_media import encode

MODELS = {
    "rci_ingest", "rci_detect", "rci_preprocess", "rci_descriptor",
    "rci_library_add", "rci_library_delete", "rci_recall", "rci_match", "rci_status",
    "rci_matchlite", "rci_matchlite_student", "rci_thumbnails",
}  # fmt: skip


def test_all_models_load_and_are_ready(server):
    request = urllib.request.Request(
        f"http://{server.http_url}/v2/repository/index",
        data=b"{}",
        method="POST",
        headers={ADMIN_HEADER: server.admin_key},  # the repository API is the operator's
    )
    with urllib.request.urlopen(request) as response:
        index = json.load(response)
    assert {m["name"] for m in index} == MODELS
    assert all(m["state"] == "READY" for m in index)


def test_the_log_names_no_cuda_error_but_those_its_first_line_explains(server):
    from rci.serving.server import CPU_LOG_NOTE, EXPECTED_CPU_ERRORS

    lines = server.log_path.read_text().splitlines()
    assert lines[0] + "\n" == CPU_LOG_NOTE
    # Start-up only: later lines depend on what other tests sent.
    started = next(n for n, line in enumerate(lines) if "Started HTTPService" in line)
    errors = [line for line in lines[1:started] if line.startswith("E")]
    assert errors, "the GPU build's own errors are expected here"  # else the note is stale
    unexplained = [e for e in errors if not any(x in e for x in EXPECTED_CPU_ERRORS)]
    assert unexplained == []
    text = "\n".join(lines[:started])
    for silenced in ("NVML", "DCGM", "pinned system memory"):
        assert silenced not in text


def test_metrics_are_served(server):
    url = f"http://127.0.0.1:{server.options.metrics_port}/metrics"
    with urllib.request.urlopen(url) as response:
        text = response.read().decode()
    assert 'nv_inference_request_success{model="rci_detect"' in text


def test_detect_finds_the_edited_copy_with_its_segment(client, media):
    truth = media["truth"]
    result = client.detect(media["query"])
    assert [m.video_id for m in result.reproduced] == [truth.video_id]
    best = result.reproduced[0].segments[0]
    # Bounds within 2 s: 8 s of reference 10-18 s planted at query 6-14 s.
    assert abs(best.query_start - truth.query_start) <= 2
    assert abs(best.query_end - truth.query_end) <= 2
    assert abs(best.ref_start - truth.ref_start) <= 2
    assert abs(best.ref_end - truth.ref_end) <= 2
    assert result.duration == pytest.approx(32.0, abs=0.1)


def test_detect_reports_a_picture_and_the_video_it_sits_on(client, media):
    # Library video A shown picture-in-picture over library video B: the content box finds
    # A, the whole-frame view B; both are reported with their spans.
    result = client.detect(media["inside"])
    found = {m.video_id: m for m in result.reproduced}
    assert set(found) == {t.video_id for t in media["inside_truth"]}
    for truth in media["inside_truth"]:
        best = found[truth.video_id].segments[0]
        assert abs(best.query_start - truth.query_start) <= 2
        assert abs(best.query_end - truth.query_end) <= 2
        assert abs(best.ref_start - truth.ref_start) <= 2
        assert abs(best.ref_end - truth.ref_end) <= 2


def test_unrelated_video_reproduces_nothing(client, media):
    assert client.detect(media["unrelated"]).reproduced == []


def test_matchlite_decides_with_the_heuristic_score_beside_it(client, media):
    scorer = MatchLite()
    threshold = scorer.threshold
    result = client.detect(media["query"], verdict="matchlite")
    (copy,) = result.reproduced
    assert copy.video_id == media["truth"].video_id and copy.probability >= threshold
    # 8 s of the 32 s query are copied; the heuristic's score is reported beside.
    assert copy.copied_fraction == pytest.approx(0.25, abs=0.15)
    assert copy.score >= AlignParams().threshold
    for m in result.matches:
        assert m.reproduced == (m.probability >= scorer.cut(bool(m.segments)))
    for m in client.detect(media["unrelated"], verdict="matchlite").matches:
        assert m.probability < threshold and not m.reproduced


def test_matchlite_decides_by_default_and_a_request_can_ask_either(client, media):
    scorer = MatchLite()
    for path in (media["query"], media["inside"], media["unrelated"]):
        for verdict in (None, "matchlite"):
            result = client.detect(path, verdict=verdict)
            assert result.matches
            for m in result.matches:
                assert m.reproduced == (m.probability >= scorer.cut(bool(m.segments)))
        result = client.detect(path, verdict="heuristic")
        assert result.matches
        for m in result.matches:
            assert m.reproduced == (m.score >= AlignParams().threshold)
            assert m.probability is not None  # still scored, for the comparison
    with pytest.raises(RciClientError, match="unknown verdict 'best'"):
        client.detect(media["query"], verdict="best")


def test_http_and_grpc_give_the_same_result(server, media):
    with RciClient(server.http_url) as h, RciClient(server.grpc_url, protocol="grpc") as g:
        assert h.detect(media["query"]).matches == g.detect(media["query"]).matches


def test_served_result_equals_the_local_pipeline(server, data_dir, media):
    """The ensemble must compute exactly what the rci package computes in-process: the
    query's frames and their mirror images (the demo query is mirrored), normalized against
    the background, recalled with each frame's recurrence, matched."""
    libraries = Libraries(data_dir, ["main"], descriptor="sscd_resnet50", dim=512)
    video = preprocess(media["query"].read_bytes())
    descriptor = Descriptor()
    flipped = np.ascontiguousarray(video.frames[:, :, ::-1])
    views = QueryViews(descriptor.embed(video.frames), descriptor.embed(flipped))
    # Normalized as rci_recall does: the data directory's background, the default HubParams
    # (tests/test_configs.py checks the config spells them out).
    model = DescriptorModel.parse("sscd_resnet50")
    background = Background(read_background(background_path(data_dir, model), 512))
    views = background.normalized(views)
    local, recurrence = {}, {}
    for name, query in (("mirrored", views), ("plain", QueryViews(views.embeddings))):
        candidates, recurring = recall_recurring(libraries.index("main"), query)
        recurrence[name] = recurring
        local[name] = match_candidates(
            dataclasses.replace(query, recurrence=recurring),
            video.timestamps,
            [(c.video_id, c.embeddings, c.timestamps) for c in candidates],
        )
    with RciClient(server.http_url) as client:
        served = client.detect(media["query"]).matches
    assert [m.video_id for m in served] == [m.video_id for m in local["mirrored"]]
    for s, m in zip(served, local["mirrored"], strict=True):
        assert s.score == pytest.approx(m.score, abs=1e-4)
        assert [x.as_row()[:4] for x in s.segments] == [x.as_row()[:4] for x in m.segments]
    # MatchLite reads the same pairs: the served probabilities are the local student's.
    pairs = match_inputs(local["mirrored"], video.timestamps, recurrence["mirrored"])
    scorer = MatchLite()
    scored = scorer.score(
        *stack_inputs(pairs), scorer.descriptor, [Verdict.MATCHLITE] * len(pairs),
        np.zeros(len(pairs), bool),
    )  # fmt: skip
    assert [m.probability for m in served] == pytest.approx(scored.probability.tolist(), abs=1e-4)
    # ... and the mirrored view changes the copy's score, so the comparison tells them apart.
    assert abs(local["mirrored"][0].score - local["plain"][0].score) > 1e-3


def test_ingest_reports_fingerprints_and_duration(server, media, tmp_path):
    with RciClient(server.http_url) as client:
        result = client.ingest(media["library"]["bikes"], "bikes-again", library="second")
    # bikes.mp4: 250 frames at 25 fps = 10 s -> one fingerprint per second.
    assert (result.num_fingerprints, result.duration) == (10, pytest.approx(10.0))


def test_repeated_id_is_refused_and_changes_nothing(client, media):
    before = client.status(["main"])
    with pytest.raises(RciClientError, match="already in library"):
        client.ingest(media["library"]["bikes"], "bikes")
    assert client.status(["main"]) == before


def test_delete_then_replace_a_video(client, media):
    # In library "second": a deleted video is no longer found, its id can be taken again,
    # and an unknown id is NOT_FOUND without changing anything.
    library = "second"
    client.ingest(media["library"]["photos-people-food"], "to-replace", library=library)
    assert client.detect(media["query"], library=library).reproduced
    assert client.delete("to-replace", library=library) == 24
    assert "to-replace" not in [m.video_id for m in client.detect(media["query"], library).matches]
    before = client.status([library])
    with pytest.raises(RciClientError, match="not in library 'second'"):
        client.delete("to-replace", library=library)
    with pytest.raises(RciClientError, match="unknown library"):
        client.delete("bikes", library="nowhere")
    assert client.status([library]) == before
    client.ingest(media["library"]["photos-people-food"], "to-replace", library=library)
    assert [m.video_id for m in client.detect(media["query"], library).reproduced] == ["to-replace"]
    assert client.delete("to-replace", library=library) == 24


def test_detect_recalls_a_video_by_its_audio(server, media, tmp_path):
    """A query whose pictures match nothing but whose sound holds a library video's: that
    video becomes a candidate through audio recall, and only with the audio."""
    tune = melody(40.0, seed=11)
    source = encode_with_audio(tmp_path / "source.mp4", drifting(400, seed=1), tune)
    with av.open(str(media["unrelated"])) as container:  # photographs, not colour blobs
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    frames = frames[: 20 * 10]
    query = encode_with_audio(tmp_path / "query.mp4", frames, tune[10 * 16000 : 30 * 16000])
    silent = encode_with_audio(tmp_path / "silent.mp4", frames, None)
    with RciClient(server.http_url) as client:
        client.ingest(source, "tune-source", library="second")
        try:
            found = {m.video_id: m for m in client.detect(query, "second").matches}
            # The same music under other pictures: reported as audio reuse, not reproduced.
            shared = found["tune-source"]
            assert shared.audio_reuse and not shared.reproduced
            assert shared.audio_score > 0.9 and shared.visual_score < 0.35
            assert {s.modality for s in shared.segments} == {"audio"}
            assert "tune-source" not in {
                m.video_id for m in client.detect(silent, "second").matches
            }
        finally:
            client.delete("tune-source", library="second")


def test_detect_finds_a_copy_by_its_sound_where_every_frame_defeats_the_pictures(
    server, media, tmp_path
):
    """A library video's pictures at a tenth of their contrast under heavy noise, its sound
    kept: no frame is similar enough for the visual path (no visual segment), yet the
    pictures along the sound's alignment agree beyond chance, so it is reproduced, found by
    its audio. Its sound removed, the same pictures find nothing."""
    with av.open(str(media["library"]["photos-people-food"])) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    tune = melody(len(frames) / 25 + 1, seed=12)[: len(frames) * 16000 // 25]
    source = encode_with_audio(tmp_path / "source.mp4", frames, tune, fps=25)
    rng = np.random.default_rng(0)
    faint = 128 + 0.1 * (frames.astype(np.float32) - 128) + rng.normal(0, 30, frames.shape)
    faint = faint.clip(0, 255).astype(np.uint8)
    copy = encode_with_audio(tmp_path / "copy.mp4", faint, tune, fps=25)
    mute = encode_with_audio(tmp_path / "mute.mp4", faint, None, fps=25)
    with RciClient(server.http_url) as client:
        client.ingest(source, "faint-source", library="second")
        try:
            found = {m.video_id: m for m in client.detect(copy, "second").matches}
            m = found["faint-source"]
            assert m.reproduced and not m.audio_reuse
            assert m.visual_score == 0.0 and m.audio_score > 0.9
            (segment,) = m.segments
            assert segment.modality == "audio"
            assert segment.query_start < 2.0 and segment.query_end > 20.0
            assert abs(segment.ref_start - segment.query_start) < 1.0
            muted = {m.video_id: m for m in client.detect(mute, "second").matches}
            assert "faint-source" not in muted or not muted["faint-source"].reproduced
        finally:
            client.delete("faint-source", library="second")


def test_status_lists_libraries(client, media):
    main = {s["name"]: s for s in client.status()}["main"]
    assert main["descriptor"] == "sscd_resnet50"
    assert main["videos"] == len(media["library"])
    assert main["fingerprints"] == 24 * 3 + 10 + 6  # three 24 s photo videos, bikes, bunny
    # The photo videos are silent; the clips' soundtrack gives audio fingerprints, and every
    # video was fingerprinted (none stored as before audio fingerprints existed).
    assert 0 < main["audio_fingerprints"] <= 16 / 0.495
    assert main["videos_without_audio_fingerprints"] == 0


def test_empty_library_gives_no_candidates(client, media):
    result = client.detect(media["query"], library="empty")
    assert result.matches == []
    assert result.duration == pytest.approx(32.0, abs=0.1)


def test_preprocess_serves_audio_features(server, media):
    """rci_preprocess, called on its own, returns the audio features the package computes."""
    data = media["query"].read_bytes()  # carries an AAC track
    local = preprocess(data)
    with httpclient.InferenceServerClient(server.http_url) as triton:
        tensor = httpclient.InferInput("VIDEO_BYTES", [len(data)], "UINT8")
        tensor.set_data_from_numpy(np.frombuffer(data, dtype=np.uint8))
        result = triton.infer("rci_preprocess", [tensor])
    fbank, mfcc = result.as_numpy("AUDIO_FBANK"), result.as_numpy("AUDIO_MFCC")
    assert fbank.shape == local.audio_fbank.shape and fbank.shape[1] == 64
    assert len(fbank) == pytest.approx(100 * local.duration, abs=20)  # 100 frames per second
    np.testing.assert_allclose(fbank, local.audio_fbank, atol=1e-4)
    np.testing.assert_allclose(mfcc, local.audio_mfcc, atol=1e-4)
    # Its fingerprints, and (asked for: a call naming no outputs asks for all) their query
    # views, 5 tempos x 4 phases; the tempo-1, phase-0 view is the fingerprints themselves.
    prints = result.as_numpy("AUDIO_PRINTS")
    np.testing.assert_array_equal(prints, local.audio_prints.bits)
    np.testing.assert_array_equal(result.as_numpy("AUDIO_TIMES"), local.audio_prints.times)
    assert len(prints) > 0
    views = result.as_numpy("QUERY_AUDIO_PRINTS")
    assert views.shape == (20, len(prints), 32)
    np.testing.assert_array_equal(views[2 * 4], prints)


def test_preprocess_serves_the_descriptor_embeddings_of_its_frames(server, tmp_path):
    """Frames go to rci_descriptor EMBED_FRAMES at a time inside rci_preprocess; what comes
    out is what the descriptor gives for the package's frames, in order, none lost."""
    count = 2 * EMBED_FRAMES + 5  # three descriptor calls, the last one short
    data = encode(tmp_path / "long.mp4", count, rate=1, size=(96, 64))
    video = preprocess(data)
    frames = video.frames
    local = Descriptor().embed(frames)
    with httpclient.InferenceServerClient(server.http_url) as triton:
        tensor = httpclient.InferInput("VIDEO_BYTES", [len(data)], "UINT8")
        tensor.set_data_from_numpy(np.frombuffer(data, dtype=np.uint8))
        result = triton.infer("rci_preprocess", [tensor])
        # As rci_ingest asks: the embeddings alone, no mirrored view made.
        wanted = [httpclient.InferRequestedOutput(n) for n in ("EMBEDDINGS", "TIMESTAMPS")]
        plain = triton.infer("rci_preprocess", [tensor], outputs=wanted)
    served = result.as_numpy("EMBEDDINGS")
    assert served.shape == (count, 512) and len(result.as_numpy("TIMESTAMPS")) == count
    np.testing.assert_allclose(served, local, atol=1e-5)
    flipped = Descriptor().embed(np.ascontiguousarray(frames[:, :, ::-1]))
    np.testing.assert_allclose(result.as_numpy("MIRRORED_EMBEDDINGS"), flipped, atol=1e-5)
    # Frames with an inset found (the synthetic pattern has some), whole; the rest as they are.
    whole, rows = result.as_numpy("WHOLE_EMBEDDINGS"), video.whole_rows
    assert 0 < len(rows) < count and whole.shape == (count, 512)
    np.testing.assert_allclose(whole[rows], Descriptor().embed(video.whole_frames), atol=1e-5)
    np.testing.assert_allclose(np.delete(whole, rows, axis=0), np.delete(local, rows, axis=0))
    np.testing.assert_allclose(plain.as_numpy("EMBEDDINGS"), local, atol=1e-5)
    assert plain.as_numpy("MIRRORED_EMBEDDINGS") is None
    assert plain.as_numpy("WHOLE_EMBEDDINGS") is None


def test_preprocess_serves_frames_with_an_inset_whole(server, media):
    """WHOLE_EMBEDDINGS: each frame's picture around its inset (inside any bars), embedded,
    where an inset was found, else the frame's EMBEDDINGS row; rci_ingest does not ask."""
    data = media["inside"].read_bytes()
    video = preprocess(data)
    assert len(video.whole_rows) == len(video.frames)  # the inset is found in every frame
    local = Descriptor().embed(video.whole_frames)
    with httpclient.InferenceServerClient(server.http_url) as triton:
        tensor = httpclient.InferInput("VIDEO_BYTES", [len(data)], "UINT8")
        tensor.set_data_from_numpy(np.frombuffer(data, dtype=np.uint8))
        result = triton.infer("rci_preprocess", [tensor])
    whole = result.as_numpy("WHOLE_EMBEDDINGS")
    np.testing.assert_allclose(whole[video.whole_rows], local, atol=1e-5)
    # The whole frame is another picture than the inset.
    assert (np.sum(whole * result.as_numpy("EMBEDDINGS"), axis=1) < 0.9).all()

"""TensorBoard 2.21 reads upcycle's event files and shows exactly what metrics.jsonl holds.

Per model (dense llama, MoE mixtral, `upcycle init --preset tiny`): a train run with evaluations
(two --val domains, --eval-at-start, --eval-every 3) to step 8 whose step-8 checkpoint is then deleted
-- a kill after step 8 was logged but before its checkpoint was committed -- so the resume restarts
at step 4 with the step-6 evaluation and steps 5-8 orphaned in the first event file; a resume with
--stop-after 1 (a new event file, SessionLog START, stops at step 5); a second resume with
--eval-every 5 (a third file; its only evaluation is at step 8), so nothing the resumes write replaces
the orphaned step-6 evaluation. For the MoE run the first event file is renamed as if written by a
host whose clock is an hour ahead: the resumes' files must still sort after it.

Judges, each compared with metrics.jsonl (values after rounding the JSON double to float32, the
event files' simple_value type; steps exactly; no tag missing or extra; wall times inside the runs'
span and never going back):
- the raw records through TensorBoard's own reader (file_version, a SessionLog START in every file,
  no point past the step the next file resumes from, names sorting in write order);
- event_accumulator.EventAccumulator (the v1 loader, SessionLog purging on), keeping everything;
- plugin_event_accumulator.EventAccumulator (the v2 data path): simple_value migrated to scalars
  plugin tensors;
- `tensorboard --logdir` over HTTP, with the default --load_fast (the Rust data server, which
  ignores SessionLog: only the trimmed files make it show the right points) and --load_fast=false;
- a `tensorboard --load_fast=false` left running across the resumes of a third run (the Python v2
  loader: having read the orphaned points, it drops them only at a START it takes for a restart).
"""
import shutil
import time

import pytest
from tensorboard.backend.event_processing import event_accumulator, event_file_loader
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.util import tensor_util

import tensorboard_support as tbs

MODELS = {"dense": "llama", "moe": "mixtral"}
VOCAB = 512  # the tiny preset's
# The MoE runs also train with a Dirichlet prior, so its train/dirichlet scalar is checked too.
MOE_ARGS = ["--dirichlet-prior", "0.75", "--dirichlet-coef", "0.01"]


def first_train_args(root, model):
    """The first invocation's flags: to step 8, checkpoints at 4 and 8, evaluations at 0, 3, 6, 8."""
    return ["--model", model, "--data", root / "web", root / "code", "--val", root / "web", root / "code",
            "--steps", "8", "--micro-batch", "2", "--seq-len", "32", "--save-every", "4", "--keep", "3",
            "--eval-every", "3", "--eval-at-start", "--eval-tokens", "64"]


@pytest.fixture(scope="module")
def runs(upcycle, tmp_path_factory):
    """Trains both models (three invocations each) into ROOT/runs/<kind>; returns ROOT and the time
    span of the invocations."""
    root = tmp_path_factory.mktemp("tb")
    tbs.write_dataset(root / "web", "web", [(7 * i) % 97 for i in range(4000)], [(7 * i) % 97 for i in range(300)], VOCAB)
    tbs.write_dataset(root / "code", "code", [(13 * i + 5) % 200 for i in range(4000)],
                      [(13 * i + 5) % 200 for i in range(300)], VOCAB)
    begin = time.time()
    (root / "runs").mkdir()
    orphans = {}
    for kind, arch in MODELS.items():
        model, run = root / kind, root / "runs" / kind
        upcycle("init", "--arch", arch, "--preset", "tiny", "--seed", "1", "--dtype", "f32", model)
        upcycle("train", *first_train_args(root, model), *(MOE_ARGS if kind == "moe" else []), "--out", run)
        (first,) = event_files(run)
        orphans[kind] = summary_steps(first)
        shutil.rmtree(run / "checkpoints" / "step-00000008")  # killed before step 8's checkpoint
        if kind == "moe":  # written by a host whose clock is an hour ahead of this one
            ahead = first.name.split(".")
            ahead[3] = str(int(ahead[3]) + 3600)
            first.rename(first.with_name(".".join(ahead)))
        upcycle("train", "--out", run, "--resume", "--stop-after", "1")
        upcycle("train", "--out", run, "--resume", "--eval-every", "5")
    end = time.time()
    return {"root": root, "begin": begin, "end": end, "orphans": orphans}


def event_files(run):
    return sorted((run / "tensorboard").iterdir())


def raw_events(path):
    return list(event_file_loader.LegacyEventFileLoader(str(path)).Load())


def summary_steps(path):
    """{tag: [steps]} of one event file, read by TensorBoard's reader."""
    steps = {}
    for e in raw_events(path):
        for v in e.summary.value:
            steps.setdefault(v.tag, []).append(e.step)
    return steps


def expected(runs, kind):
    return tbs.expected_scalars(tbs.read_metrics(runs["root"] / "runs" / kind))


@pytest.mark.parametrize("kind", MODELS)
def test_scenario_orphans_points(runs, kind):
    """The scenario is the one meant: the first invocation logged the step-6 evaluation and steps
    5-8, and after the resumes metrics.jsonl holds evaluations at 0, 3 and 8 only."""
    assert runs["orphans"][kind]["eval/web/loss"] == [0, 3, 6, 8]
    assert runs["orphans"][kind]["train/loss"] == list(range(1, 9))
    records = tbs.read_metrics(runs["root"] / "runs" / kind)
    assert sorted({r["step"] for r in records if r["kind"] == "eval"}) == [0, 3, 8]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 9))


@pytest.mark.parametrize("kind", MODELS)
def test_event_files_through_tensorboards_reader(runs, kind):
    files = event_files(runs["root"] / "runs" / kind)
    assert len(files) == 3, files
    firsts = []
    resumed_at = [None, 4, 5]  # the checkpoint steps the second and third invocations resumed from
    for i, path in enumerate(files):
        assert path.name.startswith("events.out.tfevents.") and path.name.endswith(".upcycle"), path.name
        events = raw_events(path)
        assert events[0].file_version == "brain.Event:2", f"{path.name}: first event {events[0]}"
        firsts.append(events[0].wall_time)
        # START one past the resumed step; at 0 in the fresh run's file (the v2 loader ignores a run's
        # first START, so the first resume's must not be the first).
        assert events[1].session_log.status == event_pb2.SessionLog.START, f"{path.name}: {events[1]}"
        assert events[1].step == (0 if resumed_at[i] is None else resumed_at[i] + 1), f"{path.name}: {events[1]}"
        # No point past the step the next invocation resumed from: the resume trimmed them.
        limit = resumed_at[i + 1] if i + 1 < len(files) else 8
        steps = [s for tag_steps in summary_steps(path).values() for s in tag_steps]
        assert steps and max(steps) <= limit, f"{path.name}: steps {sorted(set(steps))} past {limit}"
    assert firsts == sorted(firsts), "files must sort by name in the order they were written"


@pytest.mark.parametrize("kind", MODELS)
def test_event_accumulator(runs, kind):
    want = expected(runs, kind)
    acc = event_accumulator.EventAccumulator(str(runs["root"] / "runs" / kind / "tensorboard"),
                                             size_guidance=event_accumulator.STORE_EVERYTHING_SIZE_GUIDANCE,
                                             purge_orphaned_data=True)
    acc.Reload()
    tags = acc.Tags()
    assert sorted(tags["scalars"]) == sorted(want), "scalar tags differ from metrics.jsonl's"
    assert tags["tensors"] == [] and tags["histograms"] == []
    assert acc.file_version == 2.0
    for tag in want:
        points = [(e.wall_time, e.step, e.value) for e in acc.Scalars(tag)]
        tbs.check_series(f"EventAccumulator {kind}", tag, points, want[tag], runs["begin"], runs["end"])


@pytest.mark.parametrize("kind", MODELS)
def test_plugin_event_accumulator(runs, kind):
    """The v2 data path: each simple_value becomes a scalars-plugin tensor of shape []."""
    want = expected(runs, kind)
    acc = plugin_event_accumulator.EventAccumulator(
        str(runs["root"] / "runs" / kind / "tensorboard"),
        size_guidance=plugin_event_accumulator.STORE_EVERYTHING_SIZE_GUIDANCE)
    acc.Reload()
    assert sorted(acc.Tags()["tensors"]) == sorted(want)
    assert acc.PluginTagToContent("scalars").keys() == want.keys()
    for tag in want:
        meta = acc.SummaryMetadata(tag)
        assert meta.plugin_data.plugin_name == "scalars" and meta.data_class == summary_pb2.DATA_CLASS_SCALAR, meta
        points = []
        for e in acc.Tensors(tag):
            array = tensor_util.make_ndarray(e.tensor_proto)
            assert array.shape == (), f"{tag}: shape {array.shape}"
            points.append((e.wall_time, e.step, float(array)))
        tbs.check_series(f"plugin EventAccumulator {kind}", tag, points, want[tag], runs["begin"], runs["end"])


# Default: --load_fast=auto picks the Rust data server (tensorboard-data-server is installed; the test
# asserts it did). --load_fast=false: the Python multiplexer and its data provider.
@pytest.mark.parametrize("load_fast", ["default", "false"])
def test_tensorboard_serves_scalars(runs, load_fast, tmp_path):
    want = {f"{kind}/tensorboard": expected(runs, kind) for kind in MODELS}
    extra = [] if load_fast == "default" else ["--load_fast=false"]
    server = tbs.TensorBoardServer(runs["root"] / "runs", tmp_path / "tensorboard.log", extra)
    try:
        server.wait_until_serving()
        if load_fast == "default":
            assert "fast data loading" in server.log(), f"the Rust data server was not used:\n{server.log()}"
        # The loaders read in the background: poll until the view is complete (or time out and report).
        tbs.poll(lambda: tbs.check_served(server, want, f"tensorboard --load_fast={load_fast}",
                                          runs["begin"], runs["end"]))
    finally:
        server.stop()


def test_live_tensorboard_across_a_resume(upcycle, runs, tmp_path):
    """A TensorBoard (--load_fast=false: the Python v2 loader) left running while a run is resumed:
    it has read the orphaned points before the resume cut them, so only the new file's SessionLog
    START can remove them from its view. (The Rust data server would keep them until restarted:
    docs/formats.md, Interop.)"""
    root = tmp_path / "live"
    root.mkdir()
    run = root / "dense"
    begin = time.time()
    upcycle("train", *first_train_args(runs["root"], runs["root"] / "dense"), "--out", run)
    shutil.rmtree(run / "checkpoints" / "step-00000008")
    server = tbs.TensorBoardServer(root, tmp_path / "tensorboard.log", ["--load_fast=false", "--reload_interval", "1"])
    try:
        server.wait_until_serving()
        before = {"dense/tensorboard": tbs.expected_scalars(tbs.read_metrics(run))}
        assert sorted(before["dense/tensorboard"]["eval/web/loss"]) == [0, 3, 6, 8]
        tbs.poll(lambda: tbs.check_served(server, before, "live tensorboard before the resume", begin, time.time()))
        upcycle("train", "--out", run, "--resume", "--stop-after", "1")
        upcycle("train", "--out", run, "--resume", "--eval-every", "5")
        end = time.time()
        after = {"dense/tensorboard": tbs.expected_scalars(tbs.read_metrics(run))}
        tbs.poll(lambda: tbs.check_served(server, after, "live tensorboard after the resume", begin, end))
    finally:
        server.stop()

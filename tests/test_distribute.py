"""Distributed training, the parts that need no second process: TF_CONFIG checks, the start-up wait
for peers, how a global batch is split among replicas, the learning-rate rule, the GPU-ready model.

Two worker processes on loopback are in test_distribute_cluster.py.
"""

import contextlib
import json
import socket
import threading
import time

import numpy as np
import pytest

from helpers import free_ports
from nextword.train.distribute import Cluster, DistributeError, PeerUnreachableError, parse_tf_config


def _config(workers=("127.0.0.1:2001", "127.0.0.1:2002"), task=None, **extra):
    data = {"cluster": {"worker": list(workers)}, "task": task or {"type": "worker", "index": 1}, **extra}
    return json.dumps(data)


_FIRST_WORKER = {"type": "worker", "index": 0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, r"needs TF_CONFIG; set it on each worker"),
        ("  ", r"needs TF_CONFIG"),
        ("{not json", r"TF_CONFIG is not valid JSON \(.* at character 1\)"),
        ("[1, 2]", r'TF_CONFIG has no "cluster" object'),
        (
            json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}}),
            r'TF_CONFIG has no task: add "task"',
        ),
        (_config(task={"type": "worker"}), r"TF_CONFIG has no task"),
        (
            _config(task={"type": "worker", "index": 2}),
            r"task index 2 is out of range: cluster.worker has 2 ",
        ),
        (_config(task={"type": "worker", "index": -1}), r"task index -1 is out of range"),
        (_config(task={"type": "worker", "index": "0"}), r"task index '0' must be an integer"),
        (_config(task={"type": "ps", "index": 0}), r"task type 'ps' is not a job of its cluster"),
        (_config(workers=["127.0.0.1"]), r"cluster.worker\[0\] = '127.0.0.1' is not HOST:PORT"),
        (_config(workers=["127.0.0.1:99999"]), r"is not HOST:PORT"),
        (_config(workers=["127.0.0.1:1", "127.0.0.1:1"]), r"lists an address twice"),
        (_config(workers=[]), r"lists no workers"),
        (json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {}}), r"uses only \"worker\""),
        (
            json.dumps({"cluster": {"chief": "h:1", "worker": ["h:2"]}, "task": _FIRST_WORKER}),
            r'cluster.chief must be a list of "HOST:PORT" strings',
        ),
        (
            json.dumps({"cluster": {"chief": ["h:1", "h:3"], "worker": ["h:2"]}, "task": _FIRST_WORKER}),
            r"cluster.chief lists 2 tasks; it takes one",
        ),
    ],
)
def test_bad_tf_config_is_refused_with_what_to_change(text, message):
    with pytest.raises(DistributeError, match=message):
        parse_tf_config(text)


def test_tf_config_puts_the_chief_first():
    assert parse_tf_config(_config()) == Cluster(("127.0.0.1:2001", "127.0.0.1:2002"), 1)
    with_chief = json.dumps(
        {"cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"]}, "task": {"type": "worker", "index": 0}}
    )
    cluster = parse_tf_config(with_chief)
    assert cluster.addresses == ("c:1", "w:1", "w:2") and cluster.index == 1 and not cluster.is_chief
    assert parse_tf_config(with_chief.replace('"worker", "index": 0', '"chief", "index": 0')).is_chief


def test_an_unreachable_peer_is_an_error_within_the_timeout():
    from nextword.train.distribute import wait_for_peers

    ports = free_ports(2)
    cluster = Cluster(tuple(f"127.0.0.1:{p}" for p in ports), 0)
    started = time.monotonic()
    with pytest.raises(
        PeerUnreachableError, match=rf"worker 1 at 127.0.0.1:{ports[1]} did not answer within 1 s"
    ):
        wait_for_peers(cluster, timeout=1.0)
    assert time.monotonic() - started < 10


def test_with_a_chief_task_messages_name_each_task_as_tf_config_lists_it():
    """With a chief task, TF_CONFIG's worker 0 is the cluster's second process: messages called it
    "worker 1", and the chief "worker 0", which TF_CONFIG lists under neither name."""
    from nextword.train.distribute import WorkerLostError, Workers, lost_workers, wait_for_peers

    ports = free_ports(3)
    chief, first, second = (f"127.0.0.1:{p}" for p in ports)
    text = json.dumps(
        {"cluster": {"chief": [chief], "worker": [first, second]}, "task": {"type": "worker", "index": 1}}
    )
    cluster = parse_tf_config(text)
    assert cluster.chiefs == 1 and cluster.name() == "worker 1" and cluster.index == 2
    assert [cluster.name(i) for i in range(3)] == ["the chief", "worker 0", "worker 1"]
    with pytest.raises(
        PeerUnreachableError, match=rf"^the chief at {chief}, worker 0 at {first} did not answer within 1 s"
    ):
        wait_for_peers(cluster, timeout=1.0)
    without = parse_tf_config(_config(workers=(chief, first, second)))  # worker 0 is the chief
    assert without.chiefs == 0 and [without.name(i) for i in range(3)] == ["worker 0", "worker 1", "worker 2"]
    tf = pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")
    workers = Workers(strategy=None, mode="multi-worker", index=cluster.index, count=3, chiefs=cluster.chiefs)
    with (
        pytest.raises(WorkerLostError, match=r"^worker 1 lost contact with the other workers"),
        lost_workers(workers),
    ):
        raise tf.errors.UnavailableError(None, None, "peer gone")


def test_peers_that_start_at_different_times_find_each_other():
    from nextword.train.distribute import wait_for_peers

    ports = free_ports(3)
    addresses = tuple(f"127.0.0.1:{p}" for p in ports)
    errors, done, reached = [], threading.Event(), [threading.Event() for _ in ports]

    def worker(index, delay):
        time.sleep(delay)
        try:
            wait_for_peers(Cluster(addresses, index), timeout=20)
        except Exception as exc:  # reported below
            errors.append(exc)
            return
        reached[index].set()
        # Then TensorFlow's server takes the port, and answers the late workers' checks: a listener
        # stands in for it here.
        with socket.create_server(("", ports[index])) as server:
            server.settimeout(0.1)
            while not done.is_set():
                with contextlib.suppress(TimeoutError):
                    server.accept()[0].close()

    threads = [threading.Thread(target=worker, args=(i, 0.7 * i)) for i in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not errors and not all(e.is_set() for e in reached):
        time.sleep(0.05)
    done.set()
    for t in threads:
        t.join(timeout=5)
    assert not errors and all(e.is_set() for e in reached) and not any(t.is_alive() for t in threads)


def test_a_port_in_use_is_named():
    from nextword.train.distribute import wait_for_peers

    with socket.create_server(("", 0)) as taken:
        port = taken.getsockname()[1]
        cluster = Cluster((f"127.0.0.1:{port}", "127.0.0.1:1"), 0)
        with pytest.raises(DistributeError, match=rf"cannot listen on port {port} of TF_CONFIG"):
            wait_for_peers(cluster, timeout=1)


# ----------------------------------------------------------------------------- the global batch split


def _windows(tmp_path, n_docs=37, batch=12, seed=4):
    pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")
    from nextword.train.data import STREAM_DTYPE, DiskWindows

    rng = np.random.default_rng(seed)
    stream = [2]
    for _ in range(n_docs):
        stream += [*rng.integers(3, 40, size=rng.integers(1, 30)).tolist(), 2]
    path = tmp_path / "train.ids"
    np.asarray(stream, dtype=STREAM_DTYPE).tofile(path)
    return DiskWindows(path, seq_len=5, batch_size=batch, shuffle=True, seed=seed)


@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 6])
def test_replicas_split_each_global_batch_and_read_every_window_once(tmp_path, replicas):
    from nextword.train.data import epoch_order

    windows = _windows(tmp_path)
    assert windows.n_windows % windows.batch_size  # the last step is short: the uneven split is tested
    order = epoch_order(windows.n_windows, windows.seed, 3)
    parts = [windows.shard(order, [r], replicas) for r in range(replicas)]
    for step in range(len(windows)):
        batch = np.concatenate([rows[steps == step].ravel() for steps, _, rows in parts])
        batch = batch[batch >= 0]
        expected = order[step * windows.batch_size : (step + 1) * windows.batch_size]
        np.testing.assert_array_equal(batch, expected)  # the global batch one replica would read, in order
        sizes = [int((rows[steps == step] >= 0).sum()) for steps, _, rows in parts]
        assert max(sizes) - min(sizes) <= 1  # near-equal parts
    together = windows.shard(order, range(replicas), replicas)  # one process running every replica
    np.testing.assert_array_equal(np.sort(together[2][together[2] >= 0]), np.arange(windows.n_windows))
    later = windows.shard(order, [0], replicas, first_step=2)
    assert later[0].min() == 2 and np.array_equal(later[2], parts[0][2][parts[0][0] >= 2])


@pytest.mark.train
def test_the_dataset_of_each_replica_reads_its_part_and_pads_an_empty_one(tmp_path):
    import tensorflow as tf

    windows = _windows(tmp_path, n_docs=4, batch=8)  # fewer windows in the last step than replicas
    left = windows.n_windows % 8
    assert 0 < left < 8
    windows.record = tmp_path / "record.txt"
    padding = 0
    for replica in range(8):
        for x, _y, w in windows.dataset(first_epoch=1, replicas=[replica], num_replicas=8).take(len(windows)):
            assert x.shape[1] == 5 and x.dtype == tf.int32 and w.dtype == tf.float32
            if not w.numpy().any():  # nothing left for this replica: one window of padding, weight 0
                assert x.shape[0] == 1 and not x.numpy().any()
                padding += 1
    assert padding == 8 - left
    lines = [list(map(int, line.split())) for line in windows.record.read_text().splitlines()]
    epoch = [line for line in lines if line[0] == 1]  # (epoch, step, replica, windows...)
    assert sorted((line[1], line[2]) for line in epoch) == [
        (s, r) for s in range(len(windows)) for r in range(8)
    ]
    assert sorted(i for line in epoch for i in line[3:]) == list(range(windows.n_windows))


def test_a_global_batch_that_the_replicas_cannot_split_is_refused(tmp_path):
    windows = _windows(tmp_path, batch=10)
    with pytest.raises(ValueError, match=r"replicas \(0,\) of 3 cannot split a global batch of 10"):
        windows.dataset(replicas=[0], num_replicas=3)


# ----------------------------------------------------------------------------- settings


def test_learning_rate_follows_the_replica_count():
    from nextword.train import TrainConfig

    config = TrainConfig(learning_rate=1e-3)
    assert config.learning_rate_for(1) == 1e-3
    assert config.learning_rate_for(4) == pytest.approx(2e-3)  # sqrt, the default
    from dataclasses import replace

    assert replace(config, lr_scaling="linear").learning_rate_for(4) == pytest.approx(4e-3)
    assert replace(config, lr_scaling="none").learning_rate_for(4) == 1e-3


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("distribute", "parameter-server"),
        ("checkpoint_steps", -1),
        ("lr_scaling", "cubic"),
        ("peer_timeout", 0),
    ],
)
def test_distributed_settings_are_validated(field, value):
    from nextword.train import TrainConfig

    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_the_training_lstm_stays_cudnn_eligible_and_the_step_model_does_not_use_cudnn():
    keras = pytest.importorskip("keras", reason="keras missing: install nextword[train]")
    from nextword.train import ModelConfig
    from nextword.train.model import build_model, build_step_model

    config = ModelConfig(embedding_dim=8, lstm_units=16, num_layers=2, dropout=0.2)
    for mixed in (False, True):
        model = build_model(config, 50, mixed_precision=mixed)
        lstms = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
        assert len(lstms) == 2
        for layer in lstms:  # Keras's conditions for the fused cuDNN kernel (keras.layers.LSTM docs)
            assert layer.use_cudnn in ("auto", True)
            assert layer.activation is keras.activations.tanh
            assert layer.recurrent_activation is keras.activations.sigmoid
            assert layer.recurrent_dropout == 0 and not layer.unroll and layer.use_bias
            assert layer.dtype_policy.name == ("mixed_float16" if mixed else "float32")
        assert model.get_layer("logits").dtype_policy.name == "float32"  # the loss stays float32
        assert model.output.dtype == "float32"
    step = build_step_model(config, 50)
    assert all(
        layer.use_cudnn is False for layer in step.layers if isinstance(layer, keras.layers.LSTM)
    )  # tf2onnx cannot convert CudnnRNN: export keeps the fused ONNX LSTM


def test_a_run_keeps_its_global_batch_when_resumed_with_other_replicas():
    pytest.importorskip("keras", reason="keras missing: install nextword[train]")
    from nextword.train import TrainConfig
    from nextword.train.fit import global_batch

    config = TrainConfig(batch_size=4)
    assert global_batch(config, {}, 2) == 8  # a new run: per-replica batch x replicas
    assert global_batch(config, {"training": {"global_batch": 8}}, 1) == 8  # one replica takes all 8
    with pytest.raises(ValueError, match="global batch of 8 windows, which 3 replicas cannot split"):
        global_batch(config, {"training": {"global_batch": 8}}, 3)


REPLICA_MASKS = """
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from nextword.train.model import ReplicaDropout
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
equal = {}
for kind in (keras.layers.Dropout, ReplicaDropout):
    with strategy.scope():
        layer = kind(0.5, seed=3)
        layer.build((32, 64))
    step = tf.function(lambda: strategy.run(lambda: layer(tf.ones((32, 64)), training=True)))
    first, second = (np.asarray(r) for r in strategy.experimental_local_results(step()))
    equal[kind.__name__] = bool(np.array_equal(first, second))
    equal[kind.__name__ + " kept"] = [float((m > 0).mean()) for m in (first, second)]
print(json.dumps(equal))
"""


def test_each_replica_of_a_distributed_step_draws_its_own_dropout_masks():
    """Two replicas (two logical CPUs, in a fresh process: TensorFlow fixes its devices once) feed the
    same input through a dropout layer seeded alike: Keras's own layer drops the same units in both,
    ReplicaDropout draws a mask per replica."""
    pytest.importorskip("keras", reason="keras missing: install nextword[train]")
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", REPLICA_MASKS], capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    equal = json.loads(done.stdout.strip().splitlines()[-1])
    assert equal["Dropout"] is True  # what Keras does: the masks of the replicas are alike
    assert equal["ReplicaDropout"] is False
    assert all(0.4 < kept < 0.6 for kept in equal["ReplicaDropout kept"])  # each drops about half


def test_replica_dropout_draws_what_keras_dropout_draws_in_one_process():
    keras = pytest.importorskip("keras", reason="keras missing: install nextword[train]")
    from nextword.train.model import ReplicaDropout

    x = np.ones((3, 5, 7), dtype=np.float32)
    for noise_shape in (None, (None, 1, None), (None, None, 1)):  # per word, locked, word dropout
        theirs, ours = (kind(0.3, noise_shape, seed=11) for kind in (keras.layers.Dropout, ReplicaDropout))
        for _ in range(3):  # the seed generators advance alike
            expected = np.asarray(theirs(x, training=True))
            np.testing.assert_array_equal(np.asarray(ours(x, training=True)), expected)
        assert not np.array_equal(expected, x)  # something was dropped
        np.testing.assert_array_equal(np.asarray(ours(x, training=False)), x)


def test_resuming_a_multi_worker_run_without_tf_config_says_how(run_dir, tmp_path, monkeypatch):
    import shutil

    from nextword.train import resume

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    stored = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**stored, "distribute": "multi-worker"}))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(DistributeError, match=r"TF_CONFIG is not set here.*alone with distribute='none'"):
        resume(copy, epochs=1)


def test_a_workers_scratch_folder_is_its_users_alone(tmp_path, monkeypatch):
    """A non-chief worker's copy of the encoded corpus went to a folder of a predictable name in the
    temporary directory, with the umask's mode (others could read the corpus's ids); a folder or link
    someone else put there made its mkdir fail with a bare FileExistsError."""
    import stat
    import tempfile

    from nextword.train.distribute import Workers, worker_scratch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    workers = Workers(strategy=None, mode="multi-worker", index=1, count=2)
    with worker_scratch(workers, str(tmp_path / "run")) as root:
        assert stat.S_IMODE(root.stat().st_mode) == 0o700 and root.parent == tmp_path
        name = root.name
    assert not root.exists()
    (tmp_path / name).symlink_to(tmp_path / "elsewhere")  # not a folder rmtree clears
    with (
        pytest.raises(FileExistsError, match="not a folder this run can clear: remove it or set TMPDIR"),
        worker_scratch(workers, str(tmp_path / "run")),
    ):
        pass


@pytest.mark.parametrize("mode", ["none", "mirrored"])
def test_tf_config_without_multi_worker_is_said_to_train_alone(mode, monkeypatch, caplog):
    """A worker started without --distribute multi-worker trained on alone, silently, while the chief
    waited for it; it now says so."""
    from nextword.train.distribute import start_workers

    monkeypatch.setenv("TF_CONFIG", _config())
    with caplog.at_level("WARNING", logger="nextword.train.distribute"):
        workers = start_workers(mode, peer_timeout=1.0)
    assert workers.count == 1
    assert f"TF_CONFIG is set, but distribute={mode!r}: this process trains alone" in caplog.text
    monkeypatch.delenv("TF_CONFIG")
    caplog.clear()
    start_workers(mode, peer_timeout=1.0)
    assert "TF_CONFIG" not in caplog.text

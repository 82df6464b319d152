"""nextword under a container's limits: the memory a cgroup's limit leaves (training's memory warning)
and the CPUs its quota gives (the thread counts of load(), serve and beam search), read from made-up
cgroup trees of both versions (runtime/cgroups.py); a model read under an address-space limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nextword.runtime import cgroups, sessions


def _tree(tmp_path, files: dict[str, str], membership: str) -> tuple[str, str]:
    for name, text in files.items():
        path = tmp_path / "cgroup" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc = tmp_path / "proc-cgroup"
    proc.write_text(membership)
    return str(proc), str(tmp_path / "cgroup")


def test_the_memory_left_under_the_tightest_limit_cgroup_v2(tmp_path):
    proc, mount = _tree(
        tmp_path,
        {
            "memory.max": "max\n",
            "memory.current": "5000000000\n",
            "app/memory.max": "1200000000\n",
            "app/memory.current": "700000000\n",  # 500 MB of it file cache that can be dropped
            # a corpus read twice: on the active list, dropped before anything is killed all the same
            "app/memory.stat": "anon 150000000\ninactive_file 200000000\nactive_file 300000000\n",
            "app/job/memory.max": "max\n",
            "app/job/memory.current": "100000000\n",
        },
        "0::/app/job\n",
    )
    assert cgroups.memory_room(proc, mount) == 1_000_000_000  # app's limit less app's usage


def test_the_memory_left_cgroup_v1_and_a_container_that_sees_its_group_as_the_root(tmp_path):
    files = {
        "memory/memory.limit_in_bytes": "9223372036854771712\n",  # v1's "no limit"
        "memory/memory.usage_in_bytes": "7000000000\n",
        "memory/docker/abc/memory.limit_in_bytes": "600000000\n",
        "memory/docker/abc/memory.usage_in_bytes": "350000000\n",
        "memory/docker/abc/memory.stat": (
            "cache 220000000\ntotal_inactive_file 120000000\ntotal_active_file 80000000\n"
        ),
    }
    proc, mount = _tree(tmp_path, files, "12:pids:/docker/abc\n4:cpu,memory:/docker/abc\n1:name=systemd:/\n")
    assert cgroups.memory_room(proc, mount) == 450_000_000
    inside = tmp_path / "inside"  # the container's own group mounted as the root: /docker/abc is not there
    proc, mount = _tree(
        inside,
        {"memory/memory.limit_in_bytes": "600000000\n", "memory/memory.usage_in_bytes": "100000000\n"},
        "4:memory:/docker/abc\n",
    )
    assert cgroups.memory_room(proc, mount) == 500_000_000


def test_no_limit_or_no_cgroups_is_none(tmp_path):
    proc, mount = _tree(
        tmp_path, {"memory.max": "max\n", "memory.current": "1\n", "cpu.max": "max 100000\n"}, "0::/\n"
    )
    assert cgroups.memory_room(proc, mount) is None and cgroups.cpu_quota(proc, mount) is None
    assert cgroups.memory_room(str(tmp_path / "none"), mount) is None  # not Linux
    assert cgroups.cpu_quota(str(tmp_path / "none"), mount) is None


@pytest.mark.parametrize(
    ("files", "membership", "quota"),
    [
        ({"cpu.max": "max 100000\n", "pod/cpu.max": "50000 100000\n"}, "0::/pod\n", 0.5),
        ({"cpu.max": "150000 100000\n", "pod/cpu.max": "400000 100000\n"}, "0::/pod\n", 1.5),
        (
            {
                "cpu/cpu.cfs_quota_us": "-1\n",
                "cpu/cpu.cfs_period_us": "100000\n",
                "cpu/k/cpu.cfs_quota_us": "200000\n",
                "cpu/k/cpu.cfs_period_us": "100000\n",
            },
            "3:cpu,cpuacct:/k\n",
            2.0,
        ),
    ],
)
def test_the_cpus_a_quota_gives(tmp_path, files, membership, quota):
    proc, mount = _tree(tmp_path, files, membership)
    assert cgroups.cpu_quota(proc, mount) == quota


def test_usable_cores_are_the_affinitys_within_the_quota(monkeypatch):
    """`docker run --cpus 1` on a many-core machine: load() made its second session of 2 spinning
    threads and serve 2 threads a step, measured 11% slower than one thread under a 0.5-CPU quota."""
    monkeypatch.setattr(sessions.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    for quota, cores in ((None, 64), (0.5, 1), (1.0, 1), (1.5, 2), (8.0, 8), (100.0, 64)):
        monkeypatch.setattr(sessions, "cpu_quota", lambda quota=quota: quota)
        assert sessions.usable_cores() == cores, quota


def test_a_model_is_read_into_its_own_size_not_the_caps(tmp_path):
    """With the size caps lifted (2 GB), reading the 3.6 MB bundled model first set aside 2 GB: under
    `ulimit -v 1500000` that was a MemoryError traceback."""
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))\n"
        "from nextword.runtime import LoadLimits, load\n"
        "from nextword.runtime.default import BUNDLED_MODEL\n"
        "model = load(BUNDLED_MODEL, limits=LoadLimits().without_size_caps())\n"
        "print(model.generate('a neural network', max_words=3, temperature=0))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip(), result.stderr[-2000:]


def test_a_file_that_grew_after_its_size_was_read_is_read_whole(tmp_path, monkeypatch):
    from nextword.runtime import model_check
    from nextword.runtime.default import BUNDLED_MODEL

    path = tmp_path / "grown.onnx"
    path.write_bytes(Path(BUNDLED_MODEL).read_bytes())
    real = model_check.os.fstat

    def smaller(fd):  # the size an fstat() saw before the file grew
        seen = real(fd)
        return type(seen)((*seen[:6], 1000, *seen[7:]))

    monkeypatch.setattr(model_check.os, "fstat", smaller)
    assert model_check.check_model_file(path) == path.read_bytes()


def test_running_out_of_memory_is_one_line_naming_the_limit(monkeypatch, capsys):
    """Under `ulimit -v` or a container's limit, the commands ended in a MemoryError traceback of 20 to
    50 lines."""
    from nextword.cli import main as cli_main

    def out_of_memory(args):
        raise MemoryError

    monkeypatch.setattr(cli_main, "show_info", out_of_memory)
    assert cli_main.main(["info"]) == 1
    said = capsys.readouterr().err.strip().splitlines()
    assert said == [
        "nextword info: failed: out of memory: free memory, or raise this process's limit (ulimit -v; "
        "a container's memory limit)"
    ]


def _threads_fail_at(monkeypatch, threads: int) -> None:
    """onnxruntime, as under a container's pids limit: a session of ``threads`` threads cannot start."""
    import onnxruntime as ort

    real = ort.InferenceSession

    def session(data, sess_options=None, providers=None):
        if sess_options is not None and sess_options.intra_op_num_threads == threads:
            print("*************** EP Error ***************")  # as onnxruntime prints it, on stdout
            raise RuntimeError("pthread_create failed: Resource temporarily unavailable")
        return real(data, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", session)


def test_a_thread_limit_is_not_called_a_bad_model_file(monkeypatch, caplog, capsys):
    """Under pids.max 2 load() failed with "could not be loaded as an ONNX model" (exit 2): its one-thread
    session had loaded; the optional two-thread one could not start its threads."""
    from nextword.runtime import load
    from nextword.runtime.default import BUNDLED_MODEL
    from nextword.runtime.sessions import ThreadsUnavailable

    monkeypatch.setattr(sessions, "usable_cores", lambda: 2)
    monkeypatch.setattr("nextword.runtime.model.usable_cores", lambda: 2)
    _threads_fail_at(monkeypatch, 2)
    model = load(BUNDLED_MODEL)  # on the one session it has, with a warning
    assert model.generate("a neural network", max_words=3, temperature=0)
    assert "reached a limit on threads or processes" in caplog.text and "going on with the one" in caplog.text
    assert capsys.readouterr().out == ""  # onnxruntime's banner broke `generate --json`'s output
    _threads_fail_at(monkeypatch, 1)
    with pytest.raises(ThreadsUnavailable, match=r"limit on threads or processes \(ulimit -u.*\); raise it$"):
        load(BUNDLED_MODEL)  # one thread already: no fewer to ask for


def test_a_batch_whose_two_thread_session_cannot_start_runs_on_one(monkeypatch, caplog):
    """The pair session (two threads, made at the first batch of 5 rows or more) failed the batch, in
    the server a whole tick of generations, where the process could start no more threads."""
    from nextword.runtime import load
    from nextword.runtime.default import BUNDLED_MODEL

    monkeypatch.setattr("nextword.runtime.model.usable_cores", lambda: 1)  # no wide session: the pair
    model = load(BUNDLED_MODEL)
    _threads_fail_at(monkeypatch, 2)
    prompts = ["a network", "the method", "a system", "the input", "a layer", "the output"]
    texts = model.generate(prompts, max_words=4, temperature=0)
    assert len(texts) == 6 and all(texts)
    assert "going on with the one session made" in caplog.text
    assert model.generate(prompts, max_words=4, temperature=0) == texts  # and stays on one thread


def test_onnxruntime_out_of_memory_is_a_memory_error_not_a_bad_file(monkeypatch):
    """A container's memory limit reached while onnxruntime builds a session: "could not be loaded as
    an ONNX model: ... std::bad_alloc", exit 2 as for a damaged file."""
    import onnxruntime as ort

    from nextword.runtime import load
    from nextword.runtime.default import BUNDLED_MODEL

    def session(data, sess_options=None, providers=None):
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Exception during loading: std::bad_alloc")

    monkeypatch.setattr(ort, "InferenceSession", session)
    with pytest.raises(MemoryError, match=r"onnxruntime ran out of memory making a session of .*bad_alloc"):
        load(BUNDLED_MODEL)


INFINITE = -1  # resource.RLIM_INFINITY on Linux and macOS


@pytest.mark.parametrize(
    ("limits", "refused_above", "raised", "warned"),
    [
        ((64, 64), None, None, True),
        ((64, 4096), None, 4096, False),
        ((1024, 1024), None, None, False),
        ((300, 300), None, None, True),
        ((256, INFINITE), None, 1 << 20, False),
        ((256, INFINITE), 10_240, 10_240, False),  # macOS: no more than kern.maxfilesperproc
        ((2_000_000, INFINITE), None, None, False),  # above what would be asked: never lowered
    ],
)
def test_the_server_raises_its_open_file_limit_and_warns_when_too_low(
    monkeypatch, caplog, limits, refused_above, raised, warned
):
    """Under `ulimit -n 64`, 101 of 150 clients had their connection reset and the log said nothing."""
    pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
    resource = pytest.importorskip("resource", reason="no open-file limit on this system")
    from nextword.serve.server import raise_open_files

    now = list(limits)
    set_to = []

    def setrlimit(which, value):
        if value[0] == INFINITE or (refused_above is not None and value[0] > refused_above):
            raise ValueError("not allowed to raise maximum limit")
        set_to.append(value[0])
        now[0] = value[0]

    monkeypatch.setattr(resource, "RLIM_INFINITY", INFINITE)
    monkeypatch.setattr(resource, "getrlimit", lambda which: tuple(now))
    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    before = raise_open_files(256)
    assert set_to == ([] if raised is None else [raised])
    assert before == (None if raised is None else limits[0])  # what serve() puts back
    said = [r.getMessage() for r in caplog.records if "files open (ulimit -n)" in r.getMessage()]
    assert bool(said) is warned
    if warned:
        assert (
            said[0].startswith(f"this process may hold {limits[0]} files open") and "ulimit -n 320" in said[0]
        )


def test_serve_puts_the_open_file_limit_back(monkeypatch, model):
    pytest.importorskip("fastapi", reason="install nextword[serve] to test the server")
    resource = pytest.importorskip("resource", reason="no open-file limit on this system")
    import uvicorn

    from nextword.serve import ServeConfig, serve

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard // 2, 320), hard))  # room to raise
    lowered = resource.getrlimit(resource.RLIMIT_NOFILE)
    during = []
    monkeypatch.setattr(
        uvicorn, "run", lambda app, **kwargs: during.append(resource.getrlimit(resource.RLIMIT_NOFILE))
    )
    try:
        serve(ServeConfig(port=0), model)
        assert during and during[0][0] > lowered[0]
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize(
    ("raised", "said", "code"),
    [
        ("MemoryError()", "nextword: failed: out of memory: free memory, or raise this process's limit", 1),
        (
            "ImportError('libfoo.so: failed to map segment from shared object')",
            "nextword: error: libfoo.so: failed to map segment from shared object (this process's memory "
            "limit, ulimit -v or a container's, is likely too low)",
            2,
        ),
    ],
)
def test_a_limit_met_while_the_command_loads_is_one_line(raised, said, code):
    """Under `ulimit -v 200000` numpy's or onnxruntime's import failed with a MemoryError traceback, or
    with "failed to map segment" and no word of memory."""
    script = (
        "import sys\n"
        "class Fails:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'nextword.cli.main':\n"
        f"            raise {raised}\n"
        "sys.meta_path.insert(0, Fails())\n"
        "sys.argv = ['nextword', 'info']\n"
        "from nextword.cli.entry import main\n"
        "sys.exit(main())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == code and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().startswith(said), result.stderr

"""What a run folder holds for a training that starts in it: a run to refuse, to replace, or (a cluster
restarted with the same command) to go on with.

A multi-worker cluster that lost a worker is restarted with the same command on every worker, and the
chief goes on with the run its folder holds when that run has this command's settings and corpus. The
corpus may come back under other paths (a job's own scratch folder) or with new file times (copied
again, touched by a re-download): its files are then compared by size, and where sizes agree and times
do not, by the documents they hold, so finished epochs are never thrown away for a path or a time.
"""

from __future__ import annotations

import logging

from nextword.corpus import CorpusError, recorded_split, split_corpus

from .config import TrainConfig
from .files import NotARunError, RunBusyError, RunDir, RunExistsError
from .fit import SESSION_FIELDS
from .prechecks import check_run_dir
from .run_corpus import corpus_files

__all__ = ["chief_refusal", "run_differs"]

logger = logging.getLogger(__name__)


def run_differs(run: RunDir, config: TrainConfig) -> str | None:
    """Why ``run`` holds no run of ``config``'s settings and corpus (session fields aside), or None
    where it does. Corpus paths are not compared; files of the sizes recorded but other times are
    read, and their documents compared with the run's (``data.corpus_sha256``)."""
    if not (run.root.is_dir() and run.is_run() and run.config.is_file()):
        return "it holds no run"
    try:
        stored, facts = run.read_config()
        files = corpus_files(config)  # a corpus file that is gone: not this run (reading it names it)
    except (ValueError, FileNotFoundError) as exc:
        return f"it cannot be read ({exc})"
    mine, theirs = config.to_dict(), stored.to_dict()
    for settings in (mine, theirs):
        settings["corpus"] = {**settings["corpus"], "paths": None}  # moved files are the same corpus
    changed = sorted(k for k in mine if k not in SESSION_FIELDS and mine[k] != theirs.get(k))
    if changed:
        return f"its settings differ ({', '.join(changed)})"
    recorded = facts.get("corpus_files", files)
    if recorded == files:
        return None
    if not isinstance(recorded, list) or [f[:1] for f in recorded] != [f[:1] for f in files]:
        return "its corpus files are not the size they were"
    data = facts.get("data")
    data = data if isinstance(data, dict) else {}
    digest = data.get("corpus_sha256")
    if not isinstance(digest, str):
        return "its corpus files changed since it started (their times), and it recorded no digest"
    logger.info("%s: the corpus files have other times than the run recorded: comparing documents", run.root)
    try:
        split = split_corpus(config.corpus, recorded_split(data, config.corpus))
    except (CorpusError, ValueError, OSError) as exc:
        return f"its corpus could not be read again ({exc})"
    if split.digest != digest:
        return "its corpus files hold other documents"
    logger.info("%s: the same documents: the run goes on", run.root)
    return None


def chief_refusal(run: RunDir, config: TrainConfig, check_folder: bool) -> FileExistsError | None:
    """What the chief of a cluster would refuse its run folder for (a file in its place, another process
    training there or an export reading it; with ``check_folder`` what :func:`check_run_dir` refuses, and
    without it, where a restarted run starts again, a run that an interrupted overwrite set aside),
    or None: said before the other workers wait on it, so that every worker names the reason rather than
    a lost chief."""
    try:
        if run.root.exists() and not run.root.is_dir():
            raise RunExistsError(f"{run.root} exists and is not a folder; choose another `out`")
        run.check_free()  # another process training there, or an export reading the run
        if check_folder:
            check_run_dir(run, config)
        elif not run.checkpoint.is_file():  # starting again sets the run aside: its place must be free
            run.check_aside_free()
    except (RunExistsError, NotARunError, RunBusyError) as exc:
        return exc
    return None

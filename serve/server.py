"""Running the app: uvicorn, one process or several sharing the port."""

from __future__ import annotations

import dataclasses
import json
import logging
import os

from nextword.runtime import NextWordModel
from nextword.runtime.model_check import check_model_file

from .app import CONFIG_ENV, create_app
from .config import ServeConfig

__all__ = ["serve"]

logger = logging.getLogger(__name__)


def serve(config: ServeConfig | None = None, model: NextWordModel | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM; then new generations are refused, running ones get
    ``config.shutdown_timeout`` seconds to finish and are cancelled after that.

    With ``config.workers > 1`` uvicorn starts that many processes on one port, each loading its own
    copy of the model (the model is then always read from ``config.model``).
    """
    import uvicorn

    config = config or ServeConfig()
    if not config.loopback:
        logger.warning("listening on %s: the server is reachable from the network", config.host)
    common = {
        "host": config.host,
        "port": config.port,
        "log_level": config.log_level,
        "timeout_graceful_shutdown": int(config.shutdown_timeout) + 5,  # backstop after the drain
    }
    if config.workers == 1:
        app = create_app(config, model)
        uvicorn.run(app, **common)
        return
    if model is not None:
        raise ValueError("workers > 1 load the model in each process: pass config.model, not model")
    # A bad file fails once, here, rather than in every worker; the check runs no session, so this
    # supervising process does not keep a copy of the model.
    check_model_file(config.model_path)
    level = logging.getLogger("nextword").getEffectiveLevel()
    os.environ[CONFIG_ENV] = json.dumps({**dataclasses.asdict(config), "_log_level": level})
    uvicorn.run("nextword.serve.app:app_from_environment", factory=True, workers=config.workers, **common)

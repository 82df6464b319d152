"""PyInstaller hook for ``nextword.serve``: the page and its browser code (``serve/static``), which the
server reads from the package's folder, and the app factory that ``--workers`` above 1 has uvicorn
import by its name in each worker process."""

from PyInstaller.utils.hooks import collect_data_files

datas = collect_data_files("nextword.serve")
hiddenimports = ["nextword.serve.app"]

"""PyInstaller hook for ``nextword.runtime``: the bundled model, which ``BUNDLED_MODEL`` and
``generate()`` without a model read from the package's data folder, and the runtime's modules, which
``nextword.runtime`` imports by name when one of its names is first used (a lookup PyInstaller's
analysis of import statements cannot follow)."""

from PyInstaller.utils.hooks import collect_data_files, collect_submodules

datas = collect_data_files("nextword.runtime")
hiddenimports = collect_submodules(
    "nextword.runtime", filter=lambda name: not name.startswith("nextword.runtime._pyinstaller")
)

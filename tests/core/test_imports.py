import pkgutil
import subprocess
import sys

import pytest

import tradeops_assets.core as core

FRAMEWORKS = ("dagster", "bentoml", "mlflow", "boto3", "dvc")
CORE_MODULES = sorted(m.name for m in pkgutil.iter_modules(core.__path__))


def test_core_has_the_modules_the_design_names():
    assert {"errors", "schemas", "features", "env", "training", "backtest", "audit"} <= set(
        CORE_MODULES
    )


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_no_framework(module):
    code = (
        "import sys, importlib\n"
        f"importlib.import_module('tradeops_assets.core.{module}')\n"
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({FRAMEWORKS!r}))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core.{module} pulled in {out.stdout.strip()}"

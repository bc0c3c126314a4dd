"""tests/infra reads terraform/ and .github/workflows/ with python-hcl2 and PyYAML.

It runs in the IaC environment (`make iac`, part of `make test`):
    .venv-iac/bin/python -m pytest -p no:cacheprovider -q --confcutdir=tests/infra tests/infra
The project's environment has no python-hcl2 (checkov's fork of it would clash), so there
the folder is left out of collection rather than failing on an import.
"""

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("hcl2") else ["test_*.py"]

import json

import pytest

from helpers import SAMPLE
from crmlib.data import open_data


@pytest.fixture(scope="session")
def truth():
    return json.loads((SAMPLE / "truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def sample_data():
    """The committed sample, read and audited as a user would (its export.yaml applies)."""
    return open_data(SAMPLE)

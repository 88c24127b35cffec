import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from support import ISAS  # noqa: E402


@pytest.fixture(params=ISAS)
def isa(request):
    return request.param

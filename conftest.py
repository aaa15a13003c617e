"""Collection settings for the doctest run over the packages (``--doctest-modules``).

``kernel/io/for_torch.py`` imports PyTorch at module level (an optional extra): without it the
module cannot be imported, so its doctests are not collected. Its tests skip themselves.
"""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("torch") else ["kernel/io/for_torch.py"]

"""``python -m igan_utils.book``: the book runner (:func:`igan_utils.book.runner.main`)."""

import sys

from .runner import main

sys.exit(main())

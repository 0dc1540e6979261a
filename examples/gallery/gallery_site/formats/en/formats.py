"""Short, sortable dates in the admin's lists (``FORMAT_MODULE_PATH``):
"2026-11-29 16:25:59" instead of "Nov. 29, 2026, 4:25 p.m.", so the
ledger's and the photos' columns fit a 1280 px screen."""

DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
DATE_FORMAT = "Y-m-d"

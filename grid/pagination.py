"""List pages: `?limit=&offset=` as DRF's LimitOffsetPagination, bounded.

DRF passes `limit` and `offset` through to SQL as given; `limit=36893488147419103233` (found by
schemathesis) made SQLite fail with "datatype mismatch", a 500. A limit above MAX_LIMIT is
served as MAX_LIMIT rows (the page's `next` link continues), and an offset beyond any row count
is an empty page, as a large in-range one already is.
"""

from rest_framework.pagination import LimitOffsetPagination

from grid.ids import MAX_ID

MAX_LIMIT = 1000


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def get_offset(self, request) -> int:
        return min(super().get_offset(request), MAX_ID)

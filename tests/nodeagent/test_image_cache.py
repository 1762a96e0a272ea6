"""The node's image cache: what is looked up for whom, and what is evicted when space runs out."""

import json
import os
import time
from pathlib import Path

import pytest

from nodeagent.image_fetch import HUB_FILE, LAST_USED, ImageFetcher, cached_images, visible_to
from sal.images import ImageCache, ImageError

MIB = 2**20


def _fetched(cache: ImageCache, key: str, *, size: int, used_ago: float, owner=None) -> Path:
    """An image as the fetcher leaves it: parts, image.json, hub.json, last-used stamp."""
    path = cache.root / key
    path.mkdir(parents=True)
    (path / "kernel").write_bytes(os.urandom(size))
    (path / "image.json").write_text('{"cmdline": ""}')
    hub = {"name": key.split(".u")[0], "version": "1", "owner": owner}
    (path / HUB_FILE).write_text(json.dumps(hub))
    (path / LAST_USED).touch()
    stamp = time.time() - used_ago
    os.utime(path / LAST_USED, (stamp, stamp))
    return path


def _fetcher(cache: ImageCache, *, limit: int, in_use=frozenset()) -> ImageFetcher:
    return ImageFetcher(lambda: cache, None, in_use=lambda: set(in_use), limit_bytes=limit)


@pytest.fixture
def cache(tmp_path) -> ImageCache:
    cache = ImageCache(tmp_path / "images")
    cache.root.mkdir()
    (cache.root / ".locks").mkdir()
    return cache


def test_the_least_recently_used_unused_images_go_first(cache, tmp_path):
    _fetched(cache, "oldest", size=MIB, used_ago=3000)
    _fetched(cache, "older", size=MIB, used_ago=2000)
    _fetched(cache, "busy", size=MIB, used_ago=9000)  # a VM uses it: kept however old
    _fetched(cache, "recent", size=MIB, used_ago=10)  # within the grace period: kept
    offline = tmp_path / "k"
    offline.write_bytes(os.urandom(MIB))
    cache.install("offline", kernel=offline)  # the operator's: never evicted
    _fetcher(cache, limit=int(5.5 * MIB), in_use={"busy"}).make_room(MIB, "new")
    assert sorted(i.name for i in cache.list()) == ["busy", "offline", "older", "recent"]


def test_when_nothing_may_go_the_fetch_is_refused_with_the_reason(cache):
    _fetched(cache, "busy", size=2 * MIB, used_ago=9000)
    with pytest.raises(ImageError, match="cannot make room"):
        _fetcher(cache, limit=2 * MIB, in_use={"busy"}).make_room(MIB, "new")
    assert [i.name for i in cache.list()] == ["busy"]


def test_without_a_hub_a_missing_image_is_an_error_and_a_cached_one_is_used(cache):
    _fetched(cache, "tiny.u7", size=1024, used_ago=5000, owner=7)
    fetcher = _fetcher(cache, limit=0)
    assert fetcher.ensure(7, "tiny").name == "tiny.u7"
    assert time.time() - (cache.root / "tiny.u7" / LAST_USED).stat().st_mtime < 60
    with pytest.raises(ImageError, match="not in the image cache"):
        fetcher.ensure(8, "tiny")  # user 8 never sees user 7's private copy
    with pytest.raises(ImageError, match="not in the image cache"):
        fetcher.ensure(8, "tiny.u7")  # not even by its cache name


def test_node_info_lists_private_images_with_their_owner(cache):
    _fetched(cache, "tiny.u7", size=1024, used_ago=5, owner=7)
    _fetched(cache, "debian-12", size=1024, used_ago=5)
    listing = {i["name"] + str(i.get("owner")): i for i in cached_images(cache.root)}
    assert set(listing) == {"tiny7", "debian-12None"}
    assert listing["tiny7"]["source"] == "hub" and listing["tiny7"]["size"] >= 1024
    assert visible_to(7, "tiny.u7") and not visible_to(8, "tiny.u7") and visible_to(8, "debian-12")

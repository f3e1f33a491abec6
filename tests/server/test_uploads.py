"""The store of uploaded pictures keeps within its size and age, least recently used first."""

from __future__ import annotations

import hashlib
import os
import time

from stylealigned_desktop.server.uploads import STALE_PART_S, mark_used, prune_uploads

NOW = time.time()
DAY = 86400.0


def _picture(folder, size, used_days_ago):
    data = os.urandom(size)
    name = hashlib.sha256(data).hexdigest()
    (folder / name).write_bytes(data)
    os.utime(folder / name, (NOW - used_days_ago * DAY,) * 2)
    return name


def test_pictures_unused_too_long_are_forgotten_the_rest_kept(tmp_path):
    old, recent = _picture(tmp_path, 100, 8), _picture(tmp_path, 100, 6)
    assert prune_uploads(tmp_path, max_bytes=10_000, max_age_s=7 * DAY, now=NOW) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == [recent]


def test_over_the_size_limit_the_least_recently_used_go_first_never_the_new_upload(tmp_path):
    a, b, c = (_picture(tmp_path, 400, days) for days in (3, 1, 2))  # used: a, then c, then b
    new = _picture(tmp_path, 400, 5)  # an old file just uploaded again: it stays
    deleted = prune_uploads(tmp_path, max_bytes=1000, max_age_s=30 * DAY, keep=new, now=NOW)
    assert deleted == [a, c]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([b, new])
    assert prune_uploads(tmp_path, max_bytes=1000, max_age_s=30 * DAY, now=NOW) == []


def test_a_picture_used_now_is_not_the_next_to_go(tmp_path):
    a, b = _picture(tmp_path, 400, 2), _picture(tmp_path, 400, 1)
    mark_used(tmp_path / a)
    assert prune_uploads(tmp_path, max_bytes=500, max_age_s=30 * DAY) == [b]


def test_other_files_stay_but_unfinished_uploads_left_by_a_crash_go(tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"x" * 5000)
    stale, fresh = tmp_path / f".{'a' * 64}.12.part", tmp_path / f".{'b' * 64}.13.part"
    for path, age in ((stale, STALE_PART_S + 60), (fresh, 60)):
        path.write_bytes(b"x")
        os.utime(path, (NOW - age,) * 2)
    assert prune_uploads(tmp_path, max_bytes=0, max_age_s=0, now=NOW) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["notes.txt", fresh.name])

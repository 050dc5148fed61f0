"""The live inference size over WebRTC follows what the machine delivers (apps/web/live.adapt_size)."""

from streamstyle.apps.web.live import adapt_size

INTERVAL = 1 / 30


def test_the_size_shrinks_by_the_square_root_of_what_was_delivered():
    # Half the frames went out: a quarter fewer pixels would not do, half would; and 5% more to settle.
    assert adapt_size(480, 0.5, 0.2, INTERVAL, 128, 480) == 320  # 480 * sqrt(0.5) * 0.95 = 322 -> 320
    assert adapt_size(480, 0.05, 0.2, INTERVAL, 128, 480) == 128  # never under the smallest


def test_the_size_grows_back_only_with_room_to_spare_and_stays_otherwise():
    assert adapt_size(320, 1.0, 0.25 * INTERVAL, INTERVAL, 128, 480) == 352
    assert adapt_size(472, 1.0, 0.25 * INTERVAL, INTERVAL, 128, 480) == 480  # never over the largest
    assert adapt_size(320, 1.0, 0.8 * INTERVAL, INTERVAL, 128, 480) == 320  # keeping up, without room
    assert adapt_size(320, 0.95, 2 * INTERVAL, INTERVAL, 128, 480) == 320
    assert all(adapt_size(size, 0.6, 0.1, INTERVAL, 128, 480) % 4 == 0 for size in range(128, 481, 4))

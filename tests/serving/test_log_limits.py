"""Log floods: a storm of accept() errors or malformed requests costs one line per kind per interval."""

import asyncio
import errno
import logging

from twotower.serving.http_server import RateLimit, install_rate_limit


def _record(msg: str, exc: BaseException = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc else None
    return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, (), exc_info)


def test_one_record_per_kind_per_interval_then_a_count_of_the_ones_left_out():
    now = [0.0]
    limit = RateLimit(interval=10.0, clock=lambda: now[0])
    emfile = OSError(errno.EMFILE, "Too many open files")
    passed = [limit.filter(_record("socket.accept() out of system resource", emfile)) for _ in range(1000)]
    assert passed.count(True) == 1
    assert limit.filter(_record("socket.accept() out of system resource", OSError(errno.ENFILE, "x")))  # other kind
    assert limit.filter(_record("another message"))
    now[0] = 10.5
    later = _record("socket.accept() out of system resource", emfile)
    assert limit.filter(later)
    assert later.getMessage().endswith("[999 more like this in the last 10 s not logged]")


def test_a_storm_of_accept_errors_on_a_real_event_loop_logs_one_line(caplog):
    asyncio_log = logging.getLogger("asyncio")
    limit = RateLimit(interval=60.0)
    asyncio_log.addFilter(limit)
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            for _ in range(17_084):  # what the hostile review saw in 12 s, reported as asyncio reports it
                loop.call_exception_handler(
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": OSError(errno.EMFILE, "Too many open files"),
                    }
                )
    finally:
        loop.close()
        asyncio_log.removeFilter(limit)
    lines = [r for r in caplog.records if "socket.accept() out of system resource" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is not None  # the first one, with its traceback


def test_the_server_rate_limits_the_loggers_of_asyncio_aiohttp_and_its_http_layer_once():
    limit = install_rate_limit()
    assert install_rate_limit() is limit
    for name in ("asyncio", "aiohttp.server", "twotower.serving.http_server"):
        assert logging.getLogger(name).filters.count(limit) == 1

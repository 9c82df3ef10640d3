"""The benchmark harness's own switches do what they say (bench/ is not shipped, but its figures are quoted)."""

import pytest

from bench import http_variants
from bench.http_servers import WorkerConfig, parse_config


def test_every_variant_is_applied():
    # A name accepted but missing from ORDER would be measured as the plain app.
    assert set(http_variants.VARIANTS) == set(http_variants.ORDER)
    assert not set(http_variants.BEFORE_APP) & set(http_variants.VARIANTS)


@pytest.mark.parametrize("text, config, label, args", [
    ("sync-2", WorkerConfig("sync", 2), "sync 2", ["--workers", "2", "--worker-class", "sync"]),
    ("gthread-2x4", WorkerConfig("gthread", 2, 4), "gthread 2x4",
     ["--workers", "2", "--worker-class", "gthread", "--threads", "4"]),
    ("granian-2x1", WorkerConfig("granian", 2, 1), "granian 2x1",
     ["--interface", "wsgi", "--workers", "2", "--blocking-threads", "1"]),
    ("granian-3", WorkerConfig("granian", 3, 1), "granian 3x1",
     ["--interface", "wsgi", "--workers", "3", "--blocking-threads", "1"]),
])
def test_server_configurations(text, config, label, args):
    parsed = parse_config(text)
    assert parsed == config
    assert parsed.label == label
    assert parsed.args() == args


def test_unknown_server_configuration_is_refused():
    with pytest.raises(ValueError, match="server configuration 'uwsgi-2'"):
        parse_config("uwsgi-2")

"""The Prometheus text the server exposes."""

from twotower.serving.metrics import ServerMetrics


def test_render_counters_histograms_and_loaded_versions():
    metrics = ServerMetrics(lambda: {("m", "2"): 1.0, ("m", "1"): 1.0})
    metrics.requests.inc("predict", "200")
    metrics.requests.inc("predict", "200")
    metrics.errors.inc("predict", "400")
    metrics.latency.observe(0.003, "predict")
    metrics.latency.observe(0.0004, "predict")
    metrics.predictions.inc("m", "2", "serving_default", amount=5)
    text = metrics.render()
    lines = set(text.splitlines())
    assert "# TYPE twotower_requests_total counter" in lines
    assert 'twotower_requests_total{api="predict",code="200"} 2' in lines
    assert 'twotower_request_errors_total{api="predict",code="400"} 1' in lines
    assert 'twotower_request_latency_seconds_bucket{api="predict",le="0.0005"} 1' in lines
    assert 'twotower_request_latency_seconds_bucket{api="predict",le="0.005"} 2' in lines
    assert 'twotower_request_latency_seconds_bucket{api="predict",le="+Inf"} 2' in lines
    assert 'twotower_request_latency_seconds_count{api="predict"} 2' in lines
    assert 'twotower_predictions_total{model="m",version="2",signature="serving_default"} 5' in lines
    assert 'twotower_model_version_loaded{model="m",version="1"} 1' in lines
    assert "twotower_loaded_versions 2" in lines
    assert text.endswith("\n")

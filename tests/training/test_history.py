import json

from sandglass.training.history import MetricsLog, plot_training_curves


def test_keep_until_drops_later_and_cut_records(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in (1, 2, 3):
        log.append({"event": "step", "step": step, "loss": 1.0 / step})
    with open(log.path, "a") as handle:
        handle.write('{"event": "step", "st')  # a line cut by a kill
    log.keep_until(2)
    assert [json.loads(line)["step"] for line in log.path.read_text().splitlines()] == [1, 2]


def test_the_curve_is_a_png(tmp_path):
    records = [{"event": "step", "step": 1, "loss": 2.0}, {"event": "validation", "step": 1, "loss": 2.5, "bleu": 3.0}]
    plot_training_curves(records, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes().startswith(b"\x89PNG")
    assert not list(tmp_path.glob(".*.tmp"))

from tradeops_assets.cli import PROGRESS, progress_line


def test_progress_bar_fills_with_steps_and_parses_the_training_log():
    line = "... trained_policy - training: 4096 steps, 13,500 steps/s, ETA 12 s"
    match = PROGRESS.search(line)
    assert match is not None
    bar = progress_line(int(match[1]), 8192, match[2], match[3], width=10)
    assert bar.startswith("[#####-----] 4,096/8,192 steps")
    assert "13,500 steps/s" in bar
    assert "ETA 12 s" in bar
    assert progress_line(9000, 8192, "1", "0", width=4).startswith("[####]")

"""The command line: help text, data generation and exit codes for bad input."""

import subprocess
import sys

from twotower import cli


def test_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "twotower.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("data", "run", "recommend"):
        assert command in out


def test_data_generate_writes_the_three_files(tmp_path, capsys):
    code = cli.main(
        ["data", "generate", "--out", str(tmp_path), "--customers", "50", "--articles", "20"]
        + ["--transactions", "300", "--quiet"]
    )
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["articles.csv", "customers.csv", "transactions_train.csv"]
    assert "wrote 300 transactions" in capsys.readouterr().out


def test_an_unexpected_failure_exits_4_not_1_with_its_traceback(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    code = cli.main(["data", "generate", "--out", str(tmp_path / "a-file" / "out"), "--quiet"])
    assert code == cli.EXIT_FAILED == 4  # 1 is "not blessed"; Python's own exit for a crash is 1 too
    err = capsys.readouterr().err
    assert "Traceback" in err and "twotower: failed: NotADirectoryError" in err


def test_bad_config_exits_2_naming_it(tmp_path, capsys):
    assert cli.main(["run", "--config", "nope", "--data", str(tmp_path), "--pipeline-root", str(tmp_path)]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err


def test_missing_data_exits_2_naming_the_file(tmp_path, capsys):
    code = cli.main(["run", "--config", "hm", "--data", str(tmp_path / "none"), "--pipeline-root", str(tmp_path)])
    assert code == 2
    assert f"{tmp_path / 'none'}: data directory not found" in capsys.readouterr().err
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "customers.csv").write_text("customer_id,age\n")
    code = cli.main(["run", "--config", "hm", "--data", str(tmp_path / "data"), "--pipeline-root", str(tmp_path)])
    assert code == 2
    assert "customers.csv: missing column(s) ['club_member_status'" in capsys.readouterr().err


def test_recommend_without_a_model_exits_2(tmp_path, capsys):
    assert cli.main(["recommend", "--serving-dir", str(tmp_path / "x"), "--customer-id", "u"]) == 2
    assert "serving directory not found" in capsys.readouterr().err


def test_bench_quality_creates_its_work_dir(tmp_path, capsys):
    work = tmp_path / "not" / "yet"
    missing = tmp_path / "no-data"
    code = cli.main(["bench", "quality", "--profile", "hm", "--data", str(missing), "--work-dir", str(work)])
    assert code == 2 and work.is_dir()
    err = capsys.readouterr().err
    assert str(missing) in err and str(work) not in err  # fails on the data, not on the work dir

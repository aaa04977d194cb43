"""``data with-events``: the logged events appended to a copy of the data in the interactions file's own layout."""

import os

import pytest

from twotower.cli import main


def test_logged_events_are_appended_in_the_data_files_column_order(tmp_path):
    data, events, out = tmp_path / "data", tmp_path / "events", tmp_path / "out"
    data.mkdir()
    events.mkdir()
    (data / "articles.csv").write_text("article_id,prod_name\n1,a\n")
    (data / "customers.csv").write_text("customer_id,age\nc,30\n")
    (data / "transactions_train.csv").write_text(
        "t_dat,customer_id,article_id,price,sales_channel_id\n2020-01-01,c,1,0.1,2"
    )
    (events / "events-2026-12-01.csv").write_text(
        "customer_id,article_id,t_dat,price,sales_channel_id\nc,1,2026-12-01,,\n"
    )
    (events / "events-2026-12-02.csv").write_text(
        "customer_id,article_id,t_dat,price,sales_channel_id\nd,1,2026-12-02,0.5,\n"
    )
    (events / "notes.txt").write_text("not an event file")
    assert main(["data", "with-events", "--data", str(data), "--events", str(events), "--out", str(out)]) == 0
    assert (out / "transactions_train.csv").read_text() == (
        "t_dat,customer_id,article_id,price,sales_channel_id\n2020-01-01,c,1,0.1,2\n"
        "2026-12-01,c,1,,\n2026-12-02,d,1,0.5,\n"
    )
    assert sorted(os.listdir(out)) == ["articles.csv", "customers.csv", "transactions_train.csv"]
    with pytest.raises(ValueError, match="must differ from --data"):
        from twotower.config import load_profile
        from twotower.data.with_events import with_events

        with_events(load_profile("hm"), str(data), str(events), str(data))

"""The end-to-end demo: a market with one cheater, the real dispute game and the durable ledger."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pinpoint.cli import main
from pinpoint.demo import Demo, get_tamperable_nodes, report_json, run_demo
from pinpoint.ledger import Ledger
from protocol.economy import check_invariants, is_supply_conserved
from prover.run import train


def test_demo_catches_the_cheater_and_keeps_the_books(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--json", "--seed", "3", "--out", str(folder)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    for key in ("jobs", "cheaters", "caught", "slashed", "challenger_rewards", "burned", "balances", "supply_conserved"):
        assert key in summary
    assert summary["supply_conserved"] is True
    books = summary["books"]  # line by line: the supply's sources equal where every token sits
    assert books["genesis"] + books["emitted"] == books["supply"] == books["sum_of_buckets"]
    # the colluder opened first and threw its game; its dispute settled from its transcript, and the
    # honest challenger's dispute still caught the cheater
    thrown = [job["thrown"] for job in summary["jobs"] if job["thrown"]]
    assert len(thrown) == 1 and thrown[0]["winner"] == "worker" and thrown[0]["settled"] == "challenger-slashed"
    assert summary["balances"]["after"]["colluder"]["balance"] < summary["balances"]["before"]["colluder"]["balance"]
    assert len(summary["cheaters"]) == 1 and summary["caught"] == summary["cheaters"]
    # every slashed token went to a winner (the honest challenger's share of the cheater's stake) or was
    # burned: the worker's share of the colluder's bond was held with the job, and burned with the slash
    assert summary["slashed"] > 0 and thrown[0]["bond_share_held"] > 0
    assert summary["challenger_rewards"] + summary["burned"] == summary["slashed"]
    assert "bond shares" not in summary["lines"][summary["cheaters"][0]]
    disputed = [job for job in summary["jobs"] if job["verdict"]]
    assert all(job["verdict"]["winner"]["role"] == "challenger" for job in disputed)
    assert [job["worker"] for job in disputed if job["tamper"]] == summary["cheaters"]
    cheater = summary["cheaters"][0]
    before, after = summary["balances"]["before"], summary["balances"]["after"]
    assert after[cheater]["stake"] < before[cheater]["stake"]
    # the ledger on disk recovers the same books, and every transcript re-checks offline
    transcripts = sorted(folder.glob("transcript-job-*.json"))
    # one honest game per job with a wrong commitment: the cheater's, and each forced-error test's
    assert len(transcripts) == sum(1 for job in summary["jobs"] if job["disputed_by"]) == 1 + sum(
        1 for job in summary["jobs"] if job["forced"] and not job["tamper"])
    with Ledger.open(folder / "ledger.db") as ledger:  # recovery replays no settlement: it needs no referee
        check_invariants(ledger.state)
        assert is_supply_conserved(ledger.state)
        witness = bytes(ledger.get_time_source_key()).hex()
        stamped = {}
        for path in transcripts:
            game_id = json.loads(path.read_text())["game_id"]
            stamped[path] = ledger._conn.execute("SELECT COUNT(*) FROM game_events WHERE game_id = ?", (game_id,)).fetchone()[0]
        settlements = [a for _, a in ledger.history() if a.kind == "settle_dispute"]
    assert len(settlements) == 1 + len(transcripts)  # the colluder's thrown game and the honest challengers'
    for path in transcripts:
        body = json.loads(path.read_text())
        assert body["setup"]["time_source"] == witness and len(body["events"]) == stamped[path]  # the ledger stamped every move
        check = CliRunner().invoke(main, ["verify-transcript", str(path), "--time-source", witness])
        assert check.exit_code == 0 and witness in check.output, check.output
    other = CliRunner().invoke(main, ["verify-transcript", str(transcripts[0]), "--time-source", "00" * 32])
    assert other.exit_code == 1 and "trusted time source" in other.output


def test_every_seed_makes_a_cheat_that_changes_the_run(tmp_path: Path) -> None:
    """The demo's cheater, for 24 seeds: the same draws as `pinpoint demo --seed S` up to the cheat,
    then the cheater's real training run, whose chain root must differ from the honest one."""
    for seed in [-1, *range(23)]:
        folder = tmp_path / f"seed-{seed}"
        folder.mkdir()
        demo = Demo(folder, seed, lambda message: None)
        demo.genesis()
        job = demo.choose_cheat(demo.post_and_auction())
        assert job.tamper is not None
        cheat = demo.train_faulty(job, folder / "cheat", "tamper")
        assert cheat.tamper == job.tamper
        assert job.tamper.kind == "state" or job.tamper.node in get_tamperable_nodes(job.spec, job.tamper.step)
        honest = train(job.spec, folder / "honest")
        assert honest.chain_root != cheat.chain_root, (seed, job.tamper)
        demo.ledger.close()


FAST_JOBS = (("mlp", "sgd", 2), ("mlp", "adam", 2))
"""The demo's story with two 2-step jobs: the same parties, transactions, games and settlements, fast."""


def test_every_seed_keeps_the_books_line_by_line(tmp_path: Path) -> None:
    """The whole story for 24 seeds (two small jobs, one of them the cheat, forced errors on): each
    party's balance and stake move by exactly the sum of its lines (jobs bought and paid, jackpot tax and
    payouts, emission, refunds, dispute rewards, bond shares, bonds lost, slashes), the emission lines add
    up to the emission, the supply's sources equal where every token sits, everything slashed went to a
    winner or was burned, and the cheater is slashed whether or not its job was drawn for a test."""
    cases = set()
    for seed in [-1, *range(23)]:
        summary = report_json(run_demo(tmp_path / f"seed-{seed}", seed, lambda message: None, FAST_JOBS))
        books, lines, balances = summary["books"], summary["lines"], summary["balances"]
        assert books["genesis"] + books["emitted"] == books["supply"] == books["sum_of_buckets"], seed
        assert books["escrow"] == books["held"] == books["bonds"] == books["vesting"] == books["unbonding"] == 0
        for label, before in balances["before"].items():
            after = balances["after"][label]
            moved = after["balance"] + after["stake"] - before["balance"] - before["stake"]
            assert moved == sum(lines[label].values()), (seed, label, lines[label])
        assert sum(line.get("emission", 0) for line in lines.values()) == books["emitted"] > 0
        # the jackpot holds the tax less what it paid to catchers of forced errors
        paid = sum(line.get("jackpot", 0) for line in lines.values())
        assert books["jackpot"] == -lines["user"]["jackpot tax"] - paid and paid == books["jackpot_paid"], seed
        (cheat,) = [job for job in summary["jobs"] if job["tamper"]]
        (honest,) = [job for job in summary["jobs"] if not job["tamper"]]
        cases.add((cheat["forced"], honest["forced"]))
        assert summary["caught"] == summary["cheaters"] == [cheat["worker"]], seed
        assert cheat["status"] == "slashed" and honest["status"] == "settled", seed
        assert lines["colluder"] == {"bonds lost": -20} and cheat["thrown"]["settled"] == "challenger-slashed"
        assert lines["user"]["jobs bought"] == -cheat["price"] - honest["price"] and lines["user"]["refunds"] == cheat["price"]
        assert set(lines["user"]) == {"jobs bought", "jackpot tax", "refunds"}, seed
        for label, line in lines.items():  # only the honest job is paid, to its worker (who may be the cheater)
            assert line.get("jobs paid", 0) == (honest["price"] if label == honest["worker"] else 0), (seed, label)
        assert lines[cheat["worker"]]["slashed"] < 0
        if honest["forced"]:  # its wrong public result was caught, and the catcher paid from the jackpot
            assert honest["opening"]["kind"] == "forced-error" and honest["opening"]["jackpot_paid"] > 0, seed
            assert lines[honest["opening"]["catcher"]]["jackpot"] == honest["opening"]["jackpot_paid"], seed
        else:
            assert honest["opening"]["kind"] == "no-forced-error", seed
        to_winners = sum(line.get("dispute rewards", 0) + line.get("bond shares", 0) for line in lines.values())
        assert books["slashed"] == to_winners + books["burned"], seed
    assert cases == {(False, False), (False, True), (True, False), (True, True)}  # every case of the draw was seen

"""Flags checked at parse time: a wrong value stops every script at once, before any data is read or
model built, with one line `prog: error: argument --flag: what was wrong (see --help)` and exit
status 2, never a traceback or a failure an hour into a run.

Each case runs the script's own parse_args in-process (what `python script.py ...` runs first) and
reads stderr; a few run as real subprocesses for the exit status and the program's name. Also: the
defaults shown in --help, the aliases of renamed flags, and the flags the test scripts no longer take.

Usage: .venv/bin/python -m pytest -q tests/test_flags.py
"""
import re
import subprocess
from pathlib import Path

import pytest
from conftest import script_cmd

import combine_results
import engine
import resnet_3d
import test_3d
import test_single_frame
import train_3d
import train_single_frame
from tools import predict, prepare_data, splits_summary

REPO = Path(__file__).resolve().parents[1]
ROOT = ["--data-root", "data/toy"]  # parsing reads no file: any path will do
V = ["clip.avi", "--single-frame", "sf.pt"]  # predict.py: a video and a model

# (parser, argv, what the one line must say after "argument ")
CASES = {
    # training: positive counts, sizes the networks can take, a positive finite learning rate
    "epochs 0": (train_single_frame, [*ROOT, "--epochs", "0"], "--epochs: must be a positive integer, got 0"),
    "epochs -3": (train_3d, [*ROOT, "--pretrained", "none", "--epochs", "-3"], "--epochs: must be a positive integer, got -3"),
    "epochs 2.5": (train_single_frame, [*ROOT, "--epochs", "2.5"], "--epochs: '2.5' is not an integer"),
    "batch-size 0": (train_single_frame, [*ROOT, "--batch-size", "0"], "--batch-size: must be a positive integer, got 0"),
    "batch-size 3d 0": (train_3d, [*ROOT, "--batch-size", "0"], "--batch-size: must be a positive integer, got 0"),
    "size": (train_single_frame, [*ROOT, "--size", str(engine.MIN_SIZE - 1)],
             f"--size: must be an integer of at least {engine.MIN_SIZE}, got {engine.MIN_SIZE - 1}"),
    "size 3d": (train_3d, [*ROOT, "--size", "8"], f"--size: must be an integer of at least {engine.MIN_SIZE}, got 8"),
    "frames": (train_3d, [*ROOT, "--frames", str(engine.MIN_FRAMES - 1)],
               f"--frames: must be an integer of at least {engine.MIN_FRAMES}, got {engine.MIN_FRAMES - 1}"),
    "workers -1": (train_single_frame, [*ROOT, "--workers", "-1"], "--workers: must be 0 or more, got -1"),
    "lr 0": (train_single_frame, [*ROOT, "--lr", "0"], "--lr: must be a positive number, got 0"),
    "lr -1e-4": (train_3d, [*ROOT, "--lr=-1e-4"], "--lr: must be a positive number, got -1e-4"),
    "lr nan": (train_single_frame, [*ROOT, "--lr", "nan"], "--lr: must be a positive number, got nan"),
    "lr inf": (train_single_frame, [*ROOT, "--lr", "inf"], "--lr: must be a positive number, got inf"),
    "lr text": (train_single_frame, [*ROOT, "--lr", "fast"], "--lr: 'fast' is not a number"),
    "seed -1": (train_single_frame, [*ROOT, "--seed", "-1"], "--seed: must be 0 or more, got -1"),
    "val-groups -1": (train_3d, [*ROOT, "--val-groups", "-1"], "--val-groups: must be 0 or more, got -1"),
    "split 4": (train_single_frame, [*ROOT, "--split", "4"], "--split: invalid choice: 4 (choose from 1, 2, 3)"),
    "widen-factor 0": (train_3d, [*ROOT, "--widen-factor", "0"], "--widen-factor: must be a positive number, got 0"),
    "widen-factor -0.5": (train_3d, [*ROOT, "--widen-factor", "-0.5"], "--widen-factor: must be a positive number, got -0.5"),
    "layer4-blocks 0": (train_3d, [*ROOT, "--layer4-blocks", "0"], "--layer4-blocks: must be an integer from 1 to 3, got 0"),
    "layer4-blocks 4": (train_3d, [*ROOT, "--layer4-blocks", "4"], "--layer4-blocks: must be an integer from 1 to 3, got 4"),
    "layer4-blocks of resnet10": (train_3d, [*ROOT, "--arch", "resnet10", "--layer4-blocks", "2"],
                                  "--layer4-blocks: resnet10's layer4 has 1 blocks, not 2"),
    "precision": (train_single_frame, [*ROOT, "--precision", "fp8"], "--precision: invalid choice: 'fp8'"),
    "resume and overwrite": (train_3d, [*ROOT, "--resume", "--overwrite"],
                             "--overwrite: not allowed with argument --resume"),
    "no data root": (train_single_frame, [], "the following arguments are required: --data-root"),
    # --train-from must name a block of the architecture, and the message says which to pass
    "train-from default on resnet18": (train_single_frame, [*ROOT, "--arch", "resnet18"],
                                       "--train-from: resnet18 has no block layer4.2; its blocks are layer1.0 ... "
                                       "layer4.1: pass e.g. --train-from layer4.1 (its last block), layer4, all or fc"),
    "train-from layer5": (train_single_frame, [*ROOT, "--train-from", "layer5"],
                          "--train-from: resnet50 has no block layer5; its blocks are layer1.0 ... layer4.2"),
    "train-from skipped 3d block": (train_3d, [*ROOT, "--arch", "resnet18", "--train-from", "layer4.1"],
                                    "--train-from: resnet18 with --layer4-blocks 1 has no block layer4.1; its blocks "
                                    "are layer1.0 ... layer4.0: pass e.g. --train-from layer4.0"),
    "train-from 3d resnet10": (train_3d, [*ROOT, "--arch", "resnet10", "--train-from", "layer3.1"],
                               "--train-from: resnet10 with --layer4-blocks 1 has no block layer3.1"),
    # testing
    "stride 0": (test_3d, [*ROOT, "--stride", "0"], "--stride: must be a positive integer, got 0"),
    "test batch-size 0": (test_single_frame, [*ROOT, "--batch-size", "0"], "--batch-size: must be a positive integer, got 0"),
    "test workers -1": (test_3d, [*ROOT, "--workers", "-1"], "--workers: must be 0 or more, got -1"),
    "crops": (test_single_frame, [*ROOT, "--crops", "ten"], "--crops: invalid choice: 'ten'"),
    "test mode": (test_3d, [*ROOT, "--mode", "clips"], "--mode: invalid choice: 'clips'"),
    "test no data root": (test_3d, [], "the following arguments are required: --data-root"),
    # the data, the tools
    "quality 0": (prepare_data, [*ROOT, "--quality", "0"], "--quality: must be an integer from 1 to 100, got 0"),
    "quality 101": (prepare_data, [*ROOT, "--quality", "101"], "--quality: must be an integer from 1 to 100, got 101"),
    "prepare workers 0": (prepare_data, [*ROOT, "--workers", "0"], "--workers: must be a positive integer, got 0"),
    "prepare no data root": (prepare_data, [], "the following arguments are required: --data-root"),
    "top 0": (predict, [*V, "--top", "0"], "--top: must be a positive integer, got 0"),
    "top -2": (predict, [*V, "--top", "-2"], "--top: must be a positive integer, got -2"),
    "predict weight 5": (predict, [*V, "--weight", "5"], "--weight: must be between 0 and 1, got 5"),
    "predict weight -0.1": (predict, [*V, "--weight", "-0.1"], "--weight: must be between 0 and 1, got -0.1"),
    "combine weight 5": (combine_results, ["--weight", "5"], "--weight: must be between 0 and 1, got 5"),
    "combine weight 1.5": (combine_results, ["--weight", "1.5"], "--weight: must be between 0 and 1, got 1.5"),
    "combine weight -0.1": (combine_results, ["--weight", "-0.1"], "--weight: must be between 0 and 1, got -0.1"),
    "summary without --out": (splits_summary, ["--runs", "a"], "the following arguments are required: --out"),
}


def usage_error(module, argv, capsys):
    """module.parse_args(argv) must exit with status 2 and one line on stderr, ending (see --help)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        module.parse_args(argv)
    out, err = capsys.readouterr()
    assert e.value.code == 2 and out == "", (e.value.code, out)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert ": error: " in lines[0] and lines[0].endswith(" (see --help)"), lines[0]
    return lines[0].split(": error: ", 1)[1].removesuffix(" (see --help)")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_flag_is_one_line_at_parse_time(case, capsys):
    module, argv, says = CASES[case]
    message = usage_error(module, argv, capsys)
    assert message.startswith(says if says.startswith("the following") else f"argument {says}"), message


@pytest.mark.parametrize("module,archs", [(train_single_frame, engine.ARCHS_2D), (train_3d, resnet_3d.ARCHS)])
def test_unknown_arch_lists_the_valid_ones(module, archs, capsys):
    message = usage_error(module, [*ROOT, "--arch", "resnet51"], capsys)
    assert message.startswith("argument --arch: invalid choice: 'resnet51' (choose from "), message
    listed = message.split("(choose from ", 1)[1].split(")")[0]
    assert [a.strip(" '") for a in listed.split(",")] == list(archs)


def test_no_model_named_for_predict(capsys):
    message = usage_error(predict, ["clip.avi"], capsys)
    assert "--run FOLDER" in message and "--single-frame" in message and "--3d" in message


def test_validation_inputs_go_together(capsys):
    message = usage_error(combine_results, ["--val-single-frame", "x"], capsys)
    assert "--val-single-frame and --val-3d go together" in message


@pytest.mark.parametrize("module", [test_single_frame, test_3d])
def test_test_scripts_take_no_seed_and_default_to_the_checkpoints_split(module, capsys):
    """Testing draws nothing at random, so there is no --seed to give; --split and --val-groups default
    to the checkpoint's (None here: read from it when the script runs)."""
    assert usage_error(module, [*ROOT, "--seed", "0"], capsys) == "unrecognized arguments: --seed 0"
    args = module.parse_args(ROOT)
    assert args.split is None and args.val_groups is None and not hasattr(args, "seed")
    assert args.overwrite is False and args.precision == "auto"


def test_renamed_flags_keep_their_old_names():
    """--pretrained is the one name of the initial weights (--weights and --kinetics-checkpoint still
    work), --3d also reads --three-d, make_report's --pdf also --out."""
    assert train_single_frame.parse_args([*ROOT, "--weights", "w.pth"]).pretrained == "w.pth"
    assert train_single_frame.parse_args([*ROOT, "--pretrained", "none"]).pretrained == "none"
    assert train_3d.parse_args([*ROOT, "--kinetics-checkpoint", "k.pth"]).pretrained == "k.pth"
    a = combine_results.parse_args(["--3d", "a", "--val-single-frame", "b", "--val-three-d", "c"])
    b = combine_results.parse_args(["--three-d", "a", "--val-single-frame", "b", "--val-3d", "c"])
    assert (a.three_d, a.val_three_d) == (b.three_d, b.val_three_d) == ("a", "c")
    assert predict.parse_args(["v.avi", "--three-d", "x.pt"]).three_d == predict.parse_args(["v.avi", "--3d", "x.pt"]).three_d
    # the documented defaults are the assignment's
    sf, td = train_single_frame.parse_args(ROOT), train_3d.parse_args(ROOT)
    assert (sf.arch, sf.train_from, sf.batch_size, sf.lr, sf.epochs, sf.size) == ("resnet50", "layer4.2", 100, 1e-4, 10, 224)
    assert (td.arch, td.train_from, td.layer4_blocks, td.batch_size, td.frames) == ("resnet50", "layer4.0", 1, 32, 16)
    assert sf.pretrained == "imagenet" and td.pretrained == "resnet-50-kinetics.pth"


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        train_3d.parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert e.value.code == 0
    options = out.split(" options: ", 1)[1]
    for flag, default in (("--epochs", "10"), ("--batch-size", "32"), ("--frames", "16"), ("--lr", "0.0001"),
                          ("--layer4-blocks", "1"), ("--train-from", "layer4.0"), ("--precision", "auto")):
        m = re.search(rf"{flag} \S+ [^(]*(?:\([^)]*\)[^(]*)*?\(default: ([^)]*)\)", options)
        assert m and m.group(1) == default, (flag, options.split(flag, 1)[1][:300])


@pytest.mark.parametrize("script,argv,says", [
    ("train_3d.py", [*ROOT, "--frames", "1"], "argument --frames: must be an integer of at least 2, got 1"),
    ("test_3d.py", [*ROOT, "--stride", "0"], "argument --stride: must be a positive integer, got 0"),
    ("tools/predict.py", [*V, "--top", "0"], "argument --top: must be a positive integer, got 0"),
    ("tools/prepare_data.py", [*ROOT, "--quality", "101"], "argument --quality: must be an integer from 1 to 100, got 101"),
    ("combine_results.py", ["--weight", "5"], "argument --weight: must be between 0 and 1, got 5"),
])
def test_bad_flag_as_a_user_types_it(script, argv, says):
    """As typed in a shell: exit status 2, the one line names the program, and nothing else is printed."""
    r = subprocess.run(script_cmd(script, *argv), cwd=REPO, capture_output=True, text=True, timeout=300)
    prog = Path(script).name
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout)
    assert r.stderr == f"{prog}: error: {says} (see --help)\n", r.stderr

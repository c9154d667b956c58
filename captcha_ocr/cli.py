"""The `captcha-ocr` command. Training imports are deferred into their commands, so `serve`,
`predict` and `eval` start without TensorFlow."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from captcha_ocr import __version__
from captcha_ocr.errors import UserError


def _model_dir_arg(parser: argparse.ArgumentParser, otherwise: str = "the shipped model") -> None:
    parser.add_argument("--model-dir", type=Path,
                        help="folder with config.json + model: the default model "
                        f"(default: $CAPTCHA_OCR_MODEL_DIR, else {otherwise})")


def _models_args(parser: argparse.ArgumentParser, pick: bool = False) -> None:
    """--model-dir (the default model), --models-dir (the others) and, for commands that read
    images, --model (which one reads them)."""
    _model_dir_arg(parser)
    parser.add_argument("--models-dir", type=Path,
                        help="folder of more models, one subfolder each "
                        "(default: $CAPTCHA_OCR_MODELS_DIR, else models/ when there is one)")
    if pick:
        parser.add_argument("--model", help="the model to read with, by name (default: the default model)")


def _named(models, name: str | None):
    """The model called `name` (None: the default), an unknown name as a one-line UserError."""
    from captcha_ocr.errors import UnknownModel

    try:
        return models.named(name) if name else models.default
    except UnknownModel as error:
        raise UserError(error.message) from error


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="local API Gateway: HTTP -> main_handler, plus the demo page at /demo")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    p.add_argument("--port", type=int, default=9000, help="default 9000; 0 picks a free port")
    _models_args(p)


def _serve(args: argparse.Namespace) -> int:
    from captcha_ocr.app import configure_logging, create_app
    from captcha_ocr.server import make_server, serve

    configure_logging()
    app = create_app(args.model_dir, args.models_dir)
    serve(make_server(app.handle, args.host, args.port),
          "captcha-ocr local API Gateway on {url}  (demo page: {url}demo, Ctrl-C stops)")
    return 0


def _add_label(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="label a folder of captchas in the browser, the model's reading pre-filled")
    p.add_argument("folder", type=Path, help="the images; labels go to FOLDER/labels.tsv after every answer")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    p.add_argument("--port", type=int, default=9001, help="default 9001; 0 picks a free port")
    p.add_argument("--retrain-minutes", type=float, default=3.0,
                   help="the page's Retrain button trains this long on the labels so far (default 3)")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="where retraining runs go (default runs/)")
    _model_dir_arg(p, otherwise="the general model, which has seen many styles, else the shipped default")


def _label(args: argparse.Namespace) -> int:
    import importlib.util

    from captcha_ocr.labelling import LabelSession, Retrainer, model_reader
    from captcha_ocr.registry import first_reading_model_dir, load_model
    from captcha_ocr.server import LabelPage, make_wsgi_server, serve

    session = LabelSession(args.folder, model_reader(load_model(args.model_dir or first_reading_model_dir())))
    retrainer = None
    if importlib.util.find_spec("keras") is not None:  # the train extra: retraining from the page
        retrainer = Retrainer(session, args.runs, args.retrain_minutes, lambda export: model_reader(load_model(export)))
    state = session.state()
    print(f"{args.folder}: {state['labelled']} of {state['total']} images labelled, {state['queue']} to look at")
    if session.skipped:
        print(f"skipped {len(session.skipped)} images whose names labels.tsv cannot hold (a tab, a line break, "
              f"spaces at an end, or a leading '#'): rename them, e.g. {session.skipped[0][:64]!r}")
    with session:
        serve(make_wsgi_server(LabelPage(session, retrainer, args.host), args.host, args.port),
              "labelling page on {url}label  (Ctrl-C stops)")
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="recognise image files through the handler: file, text, confidence, model")
    p.add_argument("images", nargs="+", type=Path)
    _models_args(p, pick=True)


def _predict(args: argparse.Namespace) -> int:
    from captcha_ocr.errors import ApiError
    from captcha_ocr.reader import Reader

    unreadable = [str(path) for path in args.images if not path.is_file()]
    if unreadable:
        raise UserError(f"not an image file: {', '.join(unreadable)}")
    reader = Reader(args.model_dir, args.models_dir)
    model = _named(reader.models, args.model) if args.model else None
    failures = 0
    for path in args.images:
        try:
            reading = reader.read(path, model)
        except ApiError as error:
            failures += 1
            print(f"{path}\terror {error.code}: {error.message}\t\t")
            continue
        print(f"{path}\t{reading.text}\t{reading.confidence}\t{reading.model}")
    return 1 if failures else 0


def _add_slide(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("slide", help="where a slider's piece goes, from the background and the piece (or the "
                                     "background without the gap): one JSON line, as POST /slide answers")
    p.add_argument("background", type=Path, help="the background with the gap")
    given = p.add_mutually_exclusive_group()
    given.add_argument("--piece", type=Path, help="the puzzle piece (a PNG with transparency, as sites send it)")
    given.add_argument("--full", type=Path, help="the same background without the gap")


def _slide(args: argparse.Namespace) -> int:
    from captcha_ocr.errors import ApiError
    from captcha_ocr.reader import Reader

    try:
        gap = Reader().slide(args.background, args.piece, args.full)
    except ApiError as error:
        print(json.dumps({"ok": False, "error": {"code": error.code, "message": error.message}}))
        return 1
    print(json.dumps(gap.as_dict()))
    return 0


def _add_slide_eval(sub: argparse._SubParsersAction) -> None:
    from captcha_ocr.slider_labels import MODES

    p = sub.add_parser("slide-eval", help="how often the gap is found in a folder of labelled sliders (YOLO "
                                          "label files): within 3, 5 and 10 px")
    p.add_argument("--data", type=Path, required=True, help="backgrounds with NNNNN.txt YOLO labels beside them "
                                                            "(and NNNNN.piece.png / NNNNN.full.png)")
    p.add_argument("--mode", choices=MODES, default="auto",
                   help="auto: the piece where there is one, else the background without the gap, else the "
                        "background alone")
    p.add_argument("--detector", type=Path, help="a gap detector's folder (gap.json, gap.tflite), e.g. from "
                                                 "slide-train (default: the shipped one)")
    p.add_argument("--json", type=Path, help="also write the report here")


def _slide_eval(args: argparse.Namespace) -> int:
    from captcha_ocr.reader import Reader
    from captcha_ocr.slider_labels import evaluate, list_sliders

    reader = Reader()
    if args.detector:
        from captcha_ocr.detector import GapDetector

        reader.use_gap_detector(GapDetector(args.detector))
    report = evaluate(reader.slide, list_sliders(args.data), args.mode)
    print(f"{args.data} ({args.mode}): {report['sliders']} sliders, within 3 px {report['within_3px'] * 100:.1f}%, "
          f"5 px {report['within_5px'] * 100:.1f}%, 10 px {report['within_10px'] * 100:.1f}%, "
          f"{len(report['failures'])} errors")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


def _add_slide_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("slide-train", help="fine-tune the gap detector on a folder of labelled sliders, then "
                                           "export it (gap.json, gap.tflite)")
    p.add_argument("--data", type=Path, required=True, help="backgrounds with NNNNN.txt YOLO labels beside them")
    p.add_argument("--out", type=Path, required=True, help="run folder; the detector lands in OUT/export")
    p.add_argument("--minutes", type=float, default=5.0, help="training time (default 5)")
    p.add_argument("--seed", type=int, default=1)


def _slide_train(args: argparse.Namespace) -> int:
    _require_training()
    from captcha_ocr.slider_labels import list_sliders
    from captcha_ocr.training.gap import fine_tune

    result = fine_tune(list_sliders(args.data), args.out, args.minutes, args.seed)
    print(f"held-out within 5 px: {result['best_within_5px'] * 100:.1f}% (before: "
          f"{result['start_within_5px'] * 100:.1f}%); the detector is in {args.out / 'export'}: serve it with "
          f"CAPTCHA_OCR_GAP_DETECTOR={args.out / 'export'}")
    return 0


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="write synthetic captchas: like the shipped model's (file name = text), or "
                                      "arithmetic, flashing GIF and Chinese ones (with labels.tsv)")
    p.add_argument("--out", type=Path, default=Path("samples"), help="folder to write images into")
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--seed", type=int, help="reproduce an earlier run's captchas (default: fresh ones, seed printed)")
    from captcha_ocr.training.generators import KINDS  # light: the generator itself is imported when used

    p.add_argument("--kind", choices=("text", *KINDS, "slider"), default="text",
                   help="text: the shipped model's kind (default); slider: NNNNN.png (the background), "
                        "NNNNN.piece.png, NNNNN.full.png (without the gap) and NNNNN.txt (the gap, as a YOLO box); "
                        "randomised: the general model's many styles (docs/general-model.md); "
                        "the others are drawn by easy-captcha-python (the [train-tools] extra; chinese needs a "
                        "CJK font: fonts-wqy-microhei)")
    _model_dir_arg(p)


def _sample(args: argparse.Namespace) -> int:
    import random

    from captcha_ocr.config import load_config
    from captcha_ocr.evaluation import synthetic_samples
    from captcha_ocr.registry import default_model_dir

    seed = random.SystemRandom().randrange(10**9) if args.seed is None else args.seed
    if args.kind == "slider":
        from captcha_ocr.slider_samples import write_sliders

        write_sliders(args.count, seed, args.out)
        print(f"wrote {args.count} sliders to {args.out} (seed {seed}; --seed {seed} writes the same ones)")
        return 0
    if args.kind != "text":
        from captcha_ocr.training.generators import generate_folder

        generate_folder(args.kind, args.count, seed, args.out)
        print(f"wrote {args.count} {args.kind} captchas and labels.tsv to {args.out} "
              f"(seed {seed}; --seed {seed} writes the same ones)")
        return 0
    config = load_config(args.model_dir or default_model_dir())
    args.out.mkdir(parents=True, exist_ok=True)
    for index, sample in enumerate(synthetic_samples(args.count, seed, config.charset, config.lengths)):
        (args.out / f"{sample.text}_{index}.png").write_bytes(sample.data)
    print(f"wrote {args.count} captchas to {args.out} (seed {seed}; --seed {seed} writes the same ones)")
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="accuracy through main_handler on fresh synthetic captchas or a labelled folder")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", type=int, metavar="N", help="N fresh captchas (never used in training)")
    source.add_argument("--data", type=Path, help="folder of images named by their label")
    p.add_argument("--seed", type=int, default=2026, help="seed of the synthetic evaluation set (default 2026)")
    p.add_argument("--model-file", help="score another .tflite in the model folder (e.g. model.tflite, the float one)")
    p.add_argument("--json", type=Path, help="also write the full report here")
    p.add_argument("--ignore-case", action="store_true",
                   help="compare readings and labels lower-cased (e.g. labels in one case of glyphs drawn in both)")
    _models_args(p, pick=True)


def _eval(args: argparse.Namespace) -> int:
    import dataclasses

    from captcha_ocr.app import App
    from captcha_ocr.config import file_sha256
    from captcha_ocr.evaluation import folder_samples, format_report, handler_report, synthetic_samples
    from captcha_ocr.registry import Model, Registry, load_registry
    from captcha_ocr.runtime import Recognizer

    model = _named(load_registry(args.model_dir, args.models_dir), args.model)
    if args.model_file:
        config = dataclasses.replace(model.config, model_file=args.model_file,
                                     sha256=file_sha256(model.directory / args.model_file))
        model = Model(model.directory, config, Recognizer(config, model.directory))
    config = model.config
    app = App(Registry([model]))  # the handler with this model alone, as its default
    if args.synthetic:
        samples = synthetic_samples(args.synthetic, args.seed, config.charset, config.lengths)
        title = f"{config.name} ({config.model_file}) on {args.synthetic} synthetic captchas (eval seed {args.seed})"
    else:
        samples = folder_samples(args.data)
        title = f"{config.name} ({config.model_file}) on {args.data}"
    report = handler_report(app.handle, samples, ignore_case=args.ignore_case)
    if args.ignore_case:
        title += ", case ignored"
    print(format_report(report, title))
    if args.json:
        args.json.write_text(json.dumps({"title": title, **report}, indent=2) + "\n")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    from captcha_ocr.training import settings

    p = sub.add_parser("train", help="train on synthetic captchas or your labelled folder, then export TFLite")
    p.add_argument("--out", required=True, help="run folder (checkpoints, history, plots, export/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    p.add_argument("--name", help="model name written to config.json (default: run folder name)")
    settings.add_arguments(p)  # one flag per TrainSettings field, defined there


def _require_training() -> None:
    """train and export import TensorFlow, which `make run` does not install: say which extra does."""
    try:
        import keras  # noqa: F401
    except ImportError as exc:
        raise UserError("training needs TensorFlow: pip install -e '.[train]' (make test installs it)") from exc


def _train(args: argparse.Namespace) -> int:
    _require_training()
    from captcha_ocr.training.export import export_run
    from captcha_ocr.training.settings import given, settings_for_run
    from captcha_ocr.training.train import infer_from_folder, load_datasets, load_unlabelled_images, train

    overrides = given(args)
    settings, resumed = settings_for_run(Path(args.out), overrides, args.resume)
    if settings.unlabelled_dir and not settings.data_dir:
        raise UserError("--unlabelled needs --data: the labelled images come first")
    if settings.data_dir and not resumed:
        infer_from_folder(settings, overrides.get("charset"), overrides.get("width"))
    train_set, validation = load_datasets(settings)
    unlabelled = load_unlabelled_images(settings)
    model = train(settings, train_set, validation, resume=args.resume, unlabelled=unlabelled)
    export_run(settings, model, train_set, validation, args.name)
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run's best checkpoint again (TFLite float + int8, config.json)")
    p.add_argument("--run", type=Path, required=True, help="the run folder given to train --out")
    p.add_argument("--name", help="model name written to config.json (default: run folder name)")


def _export(args: argparse.Namespace) -> int:
    _require_training()
    import keras

    from captcha_ocr.training.export import export_run
    from captcha_ocr.training.settings import TrainSettings
    from captcha_ocr.training.train import load_datasets

    settings = TrainSettings.load(args.run)
    best, _ = settings.finished_files()
    train_set, validation = load_datasets(settings)
    model = keras.models.load_model(best)
    export_run(settings, model, train_set, validation, args.name)
    return 0


def _add_deploy(sub: argparse._SubParsersAction) -> None:
    from captcha_ocr.deploy import REPO

    p = sub.add_parser("deploy", help="deploy to Tencent Cloud SCF with a Function URL (defaults: serverless.yml)",
                       description="Build (or take) the SCF bundle, create or update the function, wait until it "
                       "is Active, create or update its Function URL, print the URL and smoke-test it. Settings "
                       "default to serverless.yml. Credentials: TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY, "
                       "~/.tencentcloud/credentials, or the credentials file serverless.yml names.")
    p.add_argument("--config", type=Path, default=REPO / "serverless.yml", help="where the defaults come from")
    p.add_argument("--name", help="function name (default: serverless.yml service)")
    p.add_argument("--region", help="e.g. ap-guangzhou (default: serverless.yml provider.region)")
    p.add_argument("--namespace", help="SCF namespace (default: serverless.yml custom.deploy.namespace)")
    p.add_argument("--memory", type=int, help="MB (default: serverless.yml provider.memorySize)")
    p.add_argument("--timeout", type=int, help="seconds (default: serverless.yml provider.timeout)")
    p.add_argument("--url-auth", choices=["NONE", "CAM"], type=str.upper,
                   help="Function URL auth: NONE (public) or CAM (signed) (default: custom.deploy.urlAuth)")
    p.add_argument("--bundle", type=Path, help="a zip to deploy as the function's code (default: build the code "
                   "zip and its dependency layer now)")
    p.add_argument("--layer", type=Path, help="with --bundle: the dependency layer zip to bind it to")
    p.add_argument("--single-zip", action="store_true",
                   help="code and dependencies in one zip, no layer (as for the console; updates then need COS)")
    p.add_argument("--publish", action="store_true", help="publish a version and route $DEFAULT (the URL) to it")
    p.add_argument("--rollback", metavar="VERSION", help="route $DEFAULT (the URL) back to a published version; "
                   "nothing is built or uploaded")
    _models_args(p)
    p.add_argument("--cos-bucket", help="deploy a zip already uploaded to COS (a single zip over the 20 MB "
                   "UpdateFunctionCode takes directly)")
    p.add_argument("--cos-object", help="its object key in --cos-bucket")
    p.add_argument("--dry-run", action="store_true", help="print every API call (secrets masked) and send nothing")
    p.add_argument("--no-smoke", action="store_true", help="skip scripts/smoke.sh against the new URL")
    p.add_argument("--api-endpoint", help=argparse.SUPPRESS)  # host[:port] of the SCF API: the tests' fake server
    p.add_argument("--api-scheme", default="https", help=argparse.SUPPRESS)
    p.add_argument("--poll-seconds", type=float, default=2.0, help=argparse.SUPPRESS)


def _deploy(args: argparse.Namespace) -> int:
    import dataclasses
    import subprocess

    try:
        import tencentcloud.scf  # noqa: F401
        import yaml  # noqa: F401

        from captcha_ocr.deploy import REPO, bundle, tencent
        from captcha_ocr.registry import default_model_dir
    except ImportError as exc:
        raise UserError(f"deploy needs the deploy extra ({exc.name} is missing): pip install -e '.[deploy]'") from exc

    defaults = tencent.settings_from_serverless(args.config)
    chosen = {"name": args.name, "region": args.region, "namespace": args.namespace, "memory": args.memory,
              "timeout": args.timeout, "url_auth": args.url_auth}
    settings = dataclasses.replace(defaults, **{k: v for k, v in chosen.items() if v is not None})
    zip_bytes = layer_bytes = None
    if args.rollback:
        code = {}
    elif args.cos_bucket or args.cos_object:
        if not (args.cos_bucket and args.cos_object):
            raise tencent.DeployError("--cos-bucket and --cos-object go together")
        code = tencent.cos_code(args.cos_bucket, args.cos_object, settings.region)
        layer_bytes = args.layer.read_bytes() if args.layer else None
    else:
        model_dir = args.model_dir or default_model_dir()
        if args.bundle:
            archive, layer = args.bundle, args.layer
        elif args.single_zip:
            archive, layer = bundle.build(REPO / "build", "3.10", "2.17", "3.4.19", model_dir,
                                          models_dir=args.models_dir), None
        else:
            archive, layer = bundle.build_layered(REPO / "build", "3.10", "2.17", "3.4.19", model_dir,
                                                  models_dir=args.models_dir)
        zip_bytes, layer_bytes = archive.read_bytes(), layer.read_bytes() if layer else None
        names = bundle.bundled_models(zip_bytes)
        print(f"code {archive}: {tencent.describe_zip(zip_bytes)}; models: "
              + ", ".join([f"{names[0]} (default)", *names[1:]] if names else ["none"]))
        if layer_bytes is not None:
            print(f"dependency layer {layer}: {tencent.describe_zip(layer_bytes)}")
        code = tencent.zip_code(zip_bytes)
    if args.dry_run:
        reader = None
        try:
            credential = tencent.load_credential(settings.credentials_file)
            reader = tencent.SdkCloud(settings.region, credential, args.api_endpoint, args.api_scheme)
            how = "reading the account (GetFunction, ListTriggers, ListLayerVersions), writing nothing"
        except tencent.DeployError:
            how = "no credentials, so assuming an empty account"
        print(f"dry run, {how}: {settings.name} in {settings.region}/{settings.namespace}, "
              f"{settings.memory} MB, {settings.timeout} s, Function URL auth {settings.url_auth}")
        cloud = tencent.DryRun(print, zip_bytes, reader, layer_bytes)
    else:
        credential = tencent.load_credential(settings.credentials_file)
        cloud = tencent.SdkCloud(settings.region, credential, args.api_endpoint, args.api_scheme)
    deployer = tencent.Deployer(cloud, settings, poll_seconds=0 if args.dry_run else args.poll_seconds)
    if args.rollback:
        url = deployer.rollback(args.rollback)
    else:
        url = deployer.deploy(code, layer_bytes, publish=args.publish)
    print(f"Function URL: {url}")
    if args.dry_run or args.no_smoke:
        return 0
    if settings.url_auth != "NONE":
        print("smoke test skipped: the URL needs CAM-signed requests")
        return 0
    return subprocess.run(["bash", str(REPO / "scripts" / "smoke.sh"), url]).returncode


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="the models folder: add an export to it, list what it serves",
                       description="One function serves the default model and every model of the models "
                       "folder; a request picks one with `model`.")
    actions = p.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="copy an export into the models folder, once it loads in the serving runtime")
    add.add_argument("export", type=Path, help="an exported model folder, e.g. runs/mine/export")
    add.add_argument("--name", help="the name requests give as `model` (default: the name in its config.json)")
    add.add_argument("--replace", action="store_true", help="replace a model of the same name")
    add.add_argument("--models-dir", type=Path, help="default: $CAPTCHA_OCR_MODELS_DIR, else models/")
    listing = actions.add_parser("list", help="the models served: the default first")
    _models_args(listing)


def _models(args: argparse.Namespace) -> int:
    from captcha_ocr.registry import MODELS_FOLDER, add_model, default_models_dir, load_registry, models_home

    if args.action == "add":
        models_dir = args.models_dir or default_models_dir() or models_home() / MODELS_FOLDER
        model = add_model(args.export, models_dir, args.name, args.replace)
        size_kb = model.config.model_path(model.directory).stat().st_size / 1024
        print(f"added {model.name} to {model.directory} ({model.config.model_file}, {size_kb:.0f} KB); "
              f"requests read with it when they give model={model.name}")
        return 0
    models = load_registry(args.model_dir, args.models_dir)
    print(f"{'name':<28}{'file':<24}{'charset':>8}  {'lengths':<10}{'input':<9}source sizes")
    for model in models:
        config = model.config
        sizes = " ".join(f"{w}x{h}" for w, h in config.source_sizes) or "-"
        mark = "  (default)" if model is models.default else ""
        print(f"{model.name:<28}{config.model_file:<24}{len(config.charset):>8}  "
              f"{','.join(map(str, config.lengths)):<10}{config.height}x{config.width:<6}{sizes}{mark}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captcha-ocr",
        description="Captcha recognition on TFLite: serve the SCF handler locally, recognise files, "
                    "train and export models, and measure their accuracy.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_serve, _add_predict, _add_slide, _add_slide_eval, _add_slide_train, _add_sample, _add_label,
                _add_train, _add_export, _add_eval, _add_models, _add_deploy):
        add(sub)
    return parser


COMMANDS = {"serve": _serve, "predict": _predict, "slide": _slide, "slide-eval": _slide_eval,
            "slide-train": _slide_train, "sample": _sample, "label": _label, "train": _train,
            "export": _export, "eval": _eval, "models": _models, "deploy": _deploy}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as error:  # typed errors from the library: one line, no traceback
        print(f"captcha-ocr {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The `captcha-ocr` command. Training imports are deferred into their commands, so `serve`,
`predict` and `eval` start without TensorFlow."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from captcha_ocr import __version__
from captcha_ocr.errors import UserError


def _model_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path,
                        help="folder with config.json + model "
                        "(default: $CAPTCHA_OCR_MODEL_DIR, else the shipped model)")


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="local API Gateway: HTTP -> main_handler, plus the demo page at /demo")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    p.add_argument("--port", type=int, default=9000, help="default 9000; 0 picks a free port")
    _model_dir_arg(p)


def _serve(args: argparse.Namespace) -> int:
    from captcha_ocr.app import configure_logging, create_app
    from captcha_ocr.server import make_server, serve

    configure_logging()
    app = create_app(args.model_dir)
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
    _model_dir_arg(p)


def _label(args: argparse.Namespace) -> int:
    import importlib.util

    from captcha_ocr.app import create_app
    from captcha_ocr.labelling import LabelSession, Retrainer, model_reader
    from captcha_ocr.server import LabelPage, make_wsgi_server, serve

    session = LabelSession(args.folder, model_reader(create_app(args.model_dir)))
    retrainer = None
    if importlib.util.find_spec("keras") is not None:  # the train extra: retraining from the page
        retrainer = Retrainer(session, args.runs, args.retrain_minutes, lambda export: model_reader(create_app(export)))
    state = session.state()
    print(f"{args.folder}: {state['labelled']} of {state['total']} images labelled, {state['queue']} to look at")
    serve(make_wsgi_server(LabelPage(session, retrainer), args.host, args.port),
          "labelling page on {url}label  (Ctrl-C stops)")
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="recognise image files through the handler and print the replies")
    p.add_argument("images", nargs="+", type=Path)
    _model_dir_arg(p)


def _predict(args: argparse.Namespace) -> int:
    import base64

    from captcha_ocr.app import create_app

    unreadable = [str(path) for path in args.images if not path.is_file()]
    if unreadable:
        raise UserError(f"not an image file: {', '.join(unreadable)}")
    app = create_app(args.model_dir)
    failures = 0
    for path in args.images:
        event = {"base64Image": base64.b64encode(path.read_bytes()).decode()}
        body = json.loads(app.handle(event, None)["body"])
        failures += not body["ok"]
        shown = body["text"] if body["ok"] else f"error {body['error']['code']}: {body['error']['message']}"
        print(f"{path}\t{shown}\t{body.get('confidence', '')}")
    return 1 if failures else 0


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="write synthetic captchas like the shipped model's (file name = text)")
    p.add_argument("--out", type=Path, default=Path("samples"), help="folder to write PNGs into")
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--seed", type=int, help="reproduce an earlier run's captchas (default: fresh ones, seed printed)")
    _model_dir_arg(p)


def _sample(args: argparse.Namespace) -> int:
    import random

    from captcha_ocr.app import default_model_dir
    from captcha_ocr.config import load_config
    from captcha_ocr.evaluation import synthetic_samples

    config = load_config(args.model_dir or default_model_dir())
    seed = random.SystemRandom().randrange(10**9) if args.seed is None else args.seed
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
    _model_dir_arg(p)


def _eval(args: argparse.Namespace) -> int:
    import dataclasses

    from captcha_ocr.app import App, default_model_dir
    from captcha_ocr.config import file_sha256, load_config
    from captcha_ocr.evaluation import folder_samples, format_report, handler_report, synthetic_samples
    from captcha_ocr.runtime import Recognizer

    model_dir = args.model_dir or default_model_dir()
    config = load_config(model_dir)
    if args.model_file:
        config = dataclasses.replace(config, model_file=args.model_file,
                                     sha256=file_sha256(model_dir / args.model_file))
    app = App(config, Recognizer(config, model_dir))
    if args.synthetic:
        samples = synthetic_samples(args.synthetic, args.seed, config.charset, config.lengths)
        title = f"{config.model_file} on {args.synthetic} synthetic captchas (eval seed {args.seed})"
    else:
        samples = folder_samples(args.data)
        title = f"{config.model_file} on {args.data}"
    report = handler_report(app.handle, samples)
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
    train_set, validation = load_datasets(settings)
    model = keras.models.load_model(settings.run_dir / "checkpoints" / "best.keras")
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
    p.add_argument("--bundle", type=Path, help="a zip from scripts/build_bundle.py (default: build one now)")
    _model_dir_arg(p)
    p.add_argument("--cos-bucket", help="deploy a zip already uploaded to COS (needed above 50 MB)")
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
    except ImportError as exc:
        raise UserError(f"deploy needs the deploy extra ({exc.name} is missing): pip install -e '.[deploy]'") from exc

    defaults = tencent.settings_from_serverless(args.config)
    chosen = {"name": args.name, "region": args.region, "namespace": args.namespace, "memory": args.memory,
              "timeout": args.timeout, "url_auth": args.url_auth}
    settings = dataclasses.replace(defaults, **{k: v for k, v in chosen.items() if v is not None})
    zip_bytes = None
    if args.cos_bucket or args.cos_object:
        if not (args.cos_bucket and args.cos_object):
            raise tencent.DeployError("--cos-bucket and --cos-object go together")
        code = tencent.cos_code(args.cos_bucket, args.cos_object, settings.region)
    else:
        archive = args.bundle or bundle.build(REPO / "build", "3.10", "2.17", "3.4.19",
                                              args.model_dir or REPO)
        zip_bytes = archive.read_bytes()
        print(f"bundle {archive}: {tencent.describe_zip(zip_bytes)}")
        code = tencent.zip_code(zip_bytes)
    if args.dry_run:
        print(f"dry run, nothing is sent: {settings.name} in {settings.region}/{settings.namespace}, "
              f"{settings.memory} MB, {settings.timeout} s, Function URL auth {settings.url_auth}")
        cloud = tencent.DryRun(print, zip_bytes)
    else:
        credential = tencent.load_credential(settings.credentials_file)
        cloud = tencent.SdkCloud(settings.region, credential, args.api_endpoint, args.api_scheme)
    url = tencent.Deployer(cloud, settings, poll_seconds=0 if args.dry_run else args.poll_seconds).deploy(code)
    print(f"Function URL: {url}")
    if args.dry_run or args.no_smoke:
        return 0
    if settings.url_auth != "NONE":
        print("smoke test skipped: the URL needs CAM-signed requests")
        return 0
    return subprocess.run(["bash", str(REPO / "scripts" / "smoke.sh"), url]).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captcha-ocr",
        description="Captcha recognition on TFLite: serve the SCF handler locally, recognise files, "
                    "train and export models, and measure their accuracy.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_serve, _add_predict, _add_sample, _add_label, _add_train, _add_export, _add_eval, _add_deploy):
        add(sub)
    return parser


COMMANDS = {"serve": _serve, "predict": _predict, "sample": _sample, "label": _label, "train": _train,
            "export": _export, "eval": _eval, "deploy": _deploy}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as error:  # typed errors from the library: one line, no traceback
        print(f"captcha-ocr {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

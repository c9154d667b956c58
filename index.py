"""Tencent SCF entry point, `index.main_handler`: the models load once, at cold start.

CAPTCHA_OCR_MODEL_DIR names the default model's folder (model + config.json; else the shipped
model, captcha_ocr/models/default); CAPTCHA_OCR_MODELS_DIR (else models/ here) holds more, picked
per request by `model`. The bundle builder copies this file; it is not part of the installed package.
"""

from captcha_ocr.app import configure_logging, create_app
from captcha_ocr.budget import return_freed_buffers_to_the_os

configure_logging()
return_freed_buffers_to_the_os()
_app = create_app()


def main_handler(event, context):
    return _app.handle(event, context)

"""Tencent SCF entry point, `index.main_handler`: the model loads once, at cold start.

Set CAPTCHA_OCR_MODEL_DIR to serve another exported model folder (model + config.json).
"""

from captcha_ocr.app import configure_logging, create_app

configure_logging()
_app = create_app()


def main_handler(event, context):
    return _app.handle(event, context)

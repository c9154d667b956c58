"""Tencent SCF entry point, `index.main_handler`: the model loads once, at cold start.

Set CAPTCHA_OCR_MODEL_DIR to serve another exported model folder (model + config.json).
"""

from captcha_ocr.app import configure_logging, create_app
from captcha_ocr.budget import return_freed_buffers_to_the_os

configure_logging()
return_freed_buffers_to_the_os()
_app = create_app()


def main_handler(event, context):
    return _app.handle(event, context)

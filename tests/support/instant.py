"""An OpenAI-compatible server on loopback that answers at once with a fixed, valid tip: for
tests and measurements of the harness itself, where the model's speed is not the point.

    python -m tests.support.instant PORT     # serve it in a process of its own
"""

import json
import sys

import uvicorn
from fastapi import FastAPI

MODEL = "instant"
TIP = {"tip": "Write the one task that matters on a card before you open your mail."}


def instant_app() -> FastAPI:
    app = FastAPI()
    app.state.chats = 0
    answer = {
        "object": "chat.completion",
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": json.dumps(TIP)},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 16, "total_tokens": 56},
    }

    @app.get("/v1/models")
    def models() -> dict:
        # Sized like llama.cpp's answer, so the size guard has something to check.
        entry = {"id": MODEL, "object": "model", "meta": {"n_params": 135_000_000}}
        return {"object": "list", "data": [entry]}

    @app.post("/v1/chat/completions")
    def chat() -> dict:
        app.state.chats += 1
        return answer

    return app


if __name__ == "__main__":
    uvicorn.run(instant_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")

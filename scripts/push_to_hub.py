"""Push a checkpoint folder to the Hugging Face Hub: see ``scratchformers.examples.push_to_hub``.

    python scripts/push_to_hub.py outputs/demo-gpt/checkpoint --repo-id your-name/scratch-gpt-demo
"""

from scratchformers.examples.push_to_hub import main

if __name__ == "__main__":
    raise SystemExit(main())

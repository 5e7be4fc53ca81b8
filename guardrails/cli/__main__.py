"""`python -m guardrails.cli`."""

from guardrails.cli.app import main

if __name__ == "__main__":
    main()

"""``python -m ai.backend.kernel …`` starts krunner, so an agent launching upstream's module gets ours."""

from krunner.__main__ import main

if __name__ == "__main__":
    main()

"""`python -m sprites_emulator [--port 8765 ...]`: run the emulator in the foreground."""

from .server import main

if __name__ == "__main__":
    main()

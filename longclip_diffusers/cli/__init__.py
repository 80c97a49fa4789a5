"""The ``longclip-diffusers`` command line. One module per sub-command, registered in main."""

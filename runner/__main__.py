try:
    from runner.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python loads the runner: nothing has started
    raise SystemExit(130) from None

main()

from streamstyle.cli.main import main

main()

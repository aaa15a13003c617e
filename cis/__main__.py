from cis.cli import main

main()

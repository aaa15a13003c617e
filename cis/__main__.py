from cis.entry import main

main()

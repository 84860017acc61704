from kerasclf.cli import main

main()

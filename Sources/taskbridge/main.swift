print("taskbridge")

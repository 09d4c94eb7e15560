print("hello from a tiny agent")

"""AccountService: accounts, sign-in and tokens, profiles, devices, plans."""

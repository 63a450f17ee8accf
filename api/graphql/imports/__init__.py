"""The customer import over GraphQL (issue 16): ``importCustomers``, the batch counterpart of
``tierwise import customers FILE.csv``."""

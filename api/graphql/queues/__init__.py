"""Work queues and name search (issue 16): the churn queue, the complaint queue, name search, notes and
reassignment of complaints, and the customer import."""

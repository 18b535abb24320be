"""Development tools that test and measure the product and are no part of it: the test softphone."""

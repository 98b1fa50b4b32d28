package main

// bulkRows is the number of rows per multi-row INSERT of the seeding.
const bulkRows = 1000

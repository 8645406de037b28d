module github.com/streamrec/streamrec

go 1.26.0

module mtlsaudit.test/goclientauthserver

go 1.19

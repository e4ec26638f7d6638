console.log('portcullis');
